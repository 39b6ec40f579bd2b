"""The cost of a study before it runs (ouroboros.costs): the largest job's memory with a model's training state,
the disk it writes (bf16 halves a generation; keep removes the weights of generations once read), refusals
before any job, and the time probe."""
import copy
import subprocess
import sys

import pytest

from ouroboros import costs, preflight
from ouroboros.config import Study
from ouroboros.settings import ConfigError
from ouroboros.targets import make_target

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
LM = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "seq_len": 8, "prompt_len": 8, "max_steps": 3,
      "batch_size": 8, "device": "cpu"}


def _study(params=None, generations=3, **exp):
    return {"study": "cost", "seeds": [0], "generations": generations, "tracking": {"enabled": False},
            "experiments": [dict({"name": "lm", "target": "lm", "n": 40, "regimes": ["replace"],
                                  "params": dict(LM, **(params or {}))}, **exp)]}


def _estimate(cfg):
    study = Study.from_config(copy.deepcopy(cfg))
    return costs.estimate(study, {"enabled": False, "every": 1, "chains_per_job": 16, "parent_points": 1000})


def test_parameters_are_counted_from_the_settings_as_the_networks_have_them():
    for name, params in (("lm", LM), ("lm", dict(LM, tokenizer="bpe", vocab_size=300, n_layer=3)),
                         ("vae", {}), ("vae", {"arch": "conv", "latent": 8}),
                         ("diffusion", {"data": "digits", "channels": [8, 16], "norm_groups": 4})):
        t = make_target(name, params)
        assert t.parameters() == sum(p.numel() for p in t._new_net().parameters()), (name, params)


def test_a_parameter_count_is_kept_for_the_next_dry_run(tmp_path, monkeypatch):
    """Counting builds the network (importing diffusers: 4.5 s of a diffusion study's dry run): the count is kept
    under the target, its settings, the library versions and the code, and read back without building."""
    from ouroboros import paths
    from ouroboros.targets import torch_base

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch_base, "_COUNTS", {})
    params = {"data": "digits", "channels": [8, 16], "norm_groups": 4}
    counted = make_target("diffusion", params).parameters()
    assert (tmp_path / paths.parameter_counts()).is_file()
    monkeypatch.setattr(torch_base, "_COUNTS", {})  # a new process: read from the file
    again = make_target("diffusion", params)
    monkeypatch.setattr(type(again), "_new_net", lambda self: (_ for _ in ()).throw(AssertionError("built")))
    assert again.parameters() == counted
    other = make_target("diffusion", dict(params, channels=[8, 32]))  # other settings: counted, not read
    with pytest.raises(AssertionError, match="built"):
        other.parameters()


def test_without_a_gpu_driver_the_device_is_known_without_torch(tmp_path):
    """A dry run asks each torch job's device (resources: gpu): on a machine without a GPU driver the answer
    comes without importing torch (0.8 GB and a second or more in every dry run)."""
    code = ("import sys; from ouroboros import torchdev; torchdev.GPU_DEVICE_FILES = ('/nonexistent',); "
            "assert torchdev.gpus_for('auto') == 0; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_a_fit_by_gradient_descent_holds_gradients_adam_and_activations():
    t = make_target("lm", LM)
    P = t.parameters()
    assert t.model_bytes() == 4 * P
    assert t.fit_bytes(40) == 12 * P + t.activation_bytes() and t.activation_bytes() > 0
    train = max((j for j in _estimate(_study()).jobs if j.rule == "train"), key=lambda j: j.memory)
    assert train.memory >= t.runtime_bytes() + 16 * P and "training" in train.how
    bigger = max(j.memory for j in _estimate(_study({"batch_size": 32})).jobs if j.rule == "train")
    assert bigger > train.memory  # a larger batch holds more activations


def test_bf16_halves_the_weights_and_keep_counts_out_removed_generations():
    full = _estimate(_study(generations=6))
    half = _estimate(_study({"weights_dtype": "bf16"}, generations=6))
    weights = make_target("lm", LM).saved_model_bytes()
    assert full.results_bytes - half.results_bytes == pytest.approx(7 * weights / 2, rel=0.01)
    last = _estimate(_study({"keep": "last"}, generations=6))
    assert full.results_bytes - last.results_bytes == 5 * weights  # generations 1-5 removed once read
    assert last.disk_bytes == pytest.approx(full.disk_bytes)  # at its largest, before they are removed
    assert sum(j.count for j in last.jobs if j.rule == "prune") == 5


def test_a_study_that_cannot_fit_on_the_disk_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(costs, "free_disk", lambda folder=".": 1000)
    cfg = preflight.merge(preflight.load_yaml(REPO / "config" / "config.yaml"), _study())
    with pytest.raises(ConfigError, match=r"would write about .* but the disk holding results/cost has 0.000954 MB free"):
        preflight.prepare(cfg, REPO, tmp_path)


def test_a_job_over_the_memory_limit_is_refused_naming_its_parts(tmp_path):
    cfg = preflight.merge(preflight.load_yaml(REPO / "config" / "config.yaml"), _study())
    cfg["limits"] = {"job_memory_gb": 0.3}  # under torch's own memory
    with pytest.raises(ConfigError, match=r"its train job would hold about .*runtime .*training .*over the limit"):
        preflight.prepare(cfg, REPO, tmp_path)


def test_the_probe_times_a_block_study_and_a_torch_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = preflight.merge(preflight.load_yaml(REPO / "config" / "config.yaml"), _study(generations=2))
    cfg["experiments"].append({"name": "g", "target": "gaussian", "n": 20, "replicates": 10, "generations": 30,
                               "regimes": ["replace", "accumulate"]})
    prepared = preflight.prepare(cfg, REPO, tmp_path)
    est = costs.timed(prepared.costs, prepared.study, 2, str(tmp_path))
    lm, g = est.rates["lm"], est.rates["g"]
    assert lm["fit"][0] > 0 and lm["fit"][1] > 0 and lm["imports"] > 0.5  # torch's import is every job's
    assert set(g["regimes"]) == {"replace", "accumulate"} and g["regimes"]["replace"]["c0"] > 0
    assert 0 < est.longest_chain_seconds <= est.wall_seconds <= est.job_seconds
    lines = costs.describe(est, "cost", 2)
    assert any(line.startswith("  memory: the largest job") for line in lines)
    assert any(line.startswith("  disk: about") for line in lines)
    assert any(line.startswith("  time: about") for line in lines)


def test_a_sweep_of_block_experiments_with_other_regime_labels_is_timed(tmp_path, monkeypatch):
    """The sweep's later experiments borrow the first one's probe, whose regimes carry other labels (mad-fresh:
    mix-nr0-... probed, mix-nr5-... run; the first 8 experiments are probed): timed from the probe, not a KeyError."""
    monkeypatch.chdir(tmp_path)
    cfg = {"study": "swept", "seeds": [0], "generations": 20, "tracking": {"enabled": False},
           "experiments": [{"name": "mad", "target": "gaussian", "n": 20, "replicates": 10, "params": {"d": 1},
                            "regimes": [{"kind": "mix", "n_real": 0, "n_synthetic": 20, "fresh": True}],
                            "sweep": {"regime.n_real": [0, 5]}}]}
    prepared = preflight.prepare(preflight.merge(preflight.load_yaml(REPO / "config" / "config.yaml"), cfg), REPO,
                                 tmp_path)
    est = costs.timed(prepared.costs, prepared.study, 2, str(tmp_path), probes=1)  # as beyond 8 sweep points
    assert est.job_seconds > 0 and any(j.regime == "mix-nr5-ns20-fresh" for j in est.jobs)
