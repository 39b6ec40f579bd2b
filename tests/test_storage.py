"""Every pretrained generation stored once: one conversion per source for every experiment and study (a stale
cache entry is rebuilt, never used), and only the generations ``keep`` names holding weights once the jobs
reading them are done.  End to end (one conversion, bf16 weights, ``keep: last``, the logged model sharing the
generation's files, the refusal of a study that needs removed weights):
``tests/test_pretrained_lm.py::test_pretrained_study_through_snakemake_both_inits_beam_and_lora``."""
from pathlib import Path

import pytest

from tiny_hf import make_tiny_llama

pytest.importorskip("transformers")

from ouroboros import backbones  # noqa: E402
from ouroboros.targets import make_target  # noqa: E402
from ouroboros.targets.torch_base import kept  # noqa: E402


def test_keep_names_the_generations_that_keep_weights():
    assert [g for g in range(8) if kept("all", g, 7)] == list(range(8))
    assert [g for g in range(8) if kept("last", g, 7)] == [0, 7]
    assert [g for g in range(8) if kept("every 3", g, 7)] == [0, 3, 6, 7]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("src") / "llama")


def test_a_cache_entry_is_keyed_by_its_source_and_a_changed_one_is_not_used(llama, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    key = backbones.key(str(llama))
    assert key.startswith("llama-") and backbones.entry(str(llama)) == f"results/backbones/{key}"
    entry = Path(backbones.entry(str(llama)))
    backbones.build(str(llama), entry)
    assert backbones.stale(entry) is None and backbones.check_weights(entry) is None
    assert backbones.check_entries([str(llama)]) == []
    # before a job: the config and tokenizer are read from the converted copy (a GGUF's take seconds)
    assert backbones.ready(str(llama)) == entry
    target = make_target("lm", {"backbone": "pretrained", "model": str(llama), "seq_len": 8, "prompt_len": 8,
                                "block_size": 32})
    readable = target.backbone_._readable()
    assert readable.kind == "dir" and Path(readable.path) == entry.resolve()
    # the converted weights changed behind the record's back: the entry is moved aside, to be rebuilt
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert "sha256" in backbones.check_weights(entry)
    assert backbones.stale(entry)  # its time changed
    assert backbones.ready(str(llama)) is None  # a changed entry is not read
    assert len(backbones.check_entries([str(llama)])) == 1 and not entry.exists()
    # a changed source is another entry
    (llama / "config.json").write_text((llama / "config.json").read_text() + "\n")
    assert backbones.key(str(llama)) != key
