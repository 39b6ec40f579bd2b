"""Nothing silently lost: cut or edited intermediates are refused by name, with what to delete to recompute."""
import json
import os
import shutil

import numpy as np
import pytest

from ouroboros import io, jobs
from ouroboros.targets import make_target, target_class
from ouroboros.targets.base import Target

ROWS = [(g, m, 0.5 + g) for g in range(3) for m in ("std_mean", "mean_error")]


def _written(tmp_path, rows=ROWS):
    path = tmp_path / "gens0-2" / "metrics.csv"
    jobs.write_metrics(path, rows)
    return path


def test_metrics_round_trip(tmp_path):
    assert jobs.read_metrics(_written(tmp_path)) == ROWS


@pytest.mark.parametrize("cut", ["line", "mid-number", "trailer", "edit", "empty"])
def test_a_cut_or_edited_metrics_file_is_refused(tmp_path, cut):
    path = _written(tmp_path)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if cut == "line":        # whole rows lost, the file still ends at a line boundary
        bad = "".join(lines[:3])
    elif cut == "mid-number":
        bad = text[: text.index("2.5") + 2]
    elif cut == "trailer":   # every row there, the end line lost
        bad = "".join(lines[:-1])
    elif cut == "edit":      # a value changed after writing
        bad = text.replace("1.5", "1.6", 1)
    else:
        bad = ""
    path.write_text(bad)
    with pytest.raises(io.IntermediateFileError) as err:
        jobs.read_metrics(path)
    assert str(path) in str(err.value) and "rerun" in str(err.value)


def test_chain_rows_must_cover_every_generation_and_metric():
    jobs.check_chain_rows(ROWS, 2, "x/replace/seed0")
    with pytest.raises(io.IntermediateFileError, match=r"x/replace/seed0 do not cover generations 0..3: missing 3"):
        jobs.check_chain_rows(ROWS, 3, "x/replace/seed0")
    with pytest.raises(io.IntermediateFileError, match=r"generation 1: missing \['std_mean'\]"):
        jobs.check_chain_rows([r for r in ROWS if r[:2] != (1, "std_mean")], 2, "x/replace/seed0")
    with pytest.raises(io.IntermediateFileError, match=r"generation 2: repeated \['mean_error'\]"):
        jobs.check_chain_rows(ROWS + [(2, "mean_error", 1.0)], 2, "x/replace/seed0")


def test_collect_refuses_a_chain_with_lost_generations(tmp_path):
    a = _written(tmp_path)
    cols = {"study": "s", "experiment": "x", "target": "gaussian", "regime": "replace", "seed": 0}
    jobs.collect([cols], [[a]], tmp_path / "ok.csv", generations=[2])
    with pytest.raises(io.IntermediateFileError, match="missing 3-5"):
        jobs.collect([cols], [[a]], tmp_path / "bad.csv", generations=[5])
    assert not (tmp_path / "bad.csv").exists()


def test_a_failed_collect_leaves_the_last_complete_tables(tmp_path, capsys):
    """Snakemake deletes collect's outputs before it runs it: the tables of the last successful collect stay
    in last/ (hard links, no second copy on disk), and the failure says where."""
    a = _written(tmp_path)
    cols = {"study": "s", "experiment": "x", "target": "gaussian", "regime": "replace", "seed": 0}
    out = [tmp_path / n for n in ("metrics.csv", "settings.csv", "summary.csv")]
    jobs.collect([cols], [[a]], out[0], [2], out[1], out[2])
    before = [f.read_bytes() for f in out]
    assert [(tmp_path / "last" / f.name).stat().st_ino for f in out] == [f.stat().st_ino for f in out]
    for f in out:  # what Snakemake does before it runs the job again
        f.unlink()
    with pytest.raises(io.IntermediateFileError, match="missing 3-5"):
        jobs.collect([cols], [[a]], out[0], [5], out[1], out[2])
    assert f"last complete tables, from the previous collect, are kept in {tmp_path / 'last'}/" in capsys.readouterr().err
    assert [(tmp_path / "last" / f.name).read_bytes() for f in out] == before


def test_the_folder_to_delete_is_named_for_files_in_directory_outputs(tmp_path):
    gen = tmp_path / "results" / "s" / "x" / "replace" / "seed0" / "gen3"
    assert io.redo(gen / "model" / "state.npz") == f"delete the folder {gen / 'model'} and rerun the workflow to recompute it"
    assert io.redo(gen / "samples" / "samples.npz").startswith(f"delete the folder {gen / 'samples'} ")
    assert io.redo(gen / "metrics.csv").startswith(f"delete {gen / 'metrics.csv'} ")
    (gen / "model").mkdir(parents=True)
    (gen / "model" / "state.npz").write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(io.IntermediateFileError, match=f"delete the folder {gen / 'model'} and rerun"):
        io.load_npz(gen / "model" / "state.npz")


def test_the_rules_directory_outputs_are_the_ones_named():
    from pathlib import Path
    import re

    rules = "".join(p.read_text() for p in (Path(__file__).parents[1] / "rules").glob("*.smk"))
    names = {m.rstrip("/").split("/")[-1].strip("{}") for m in re.findall(r'directory\(f?"([^"]+)"\)', rules)}
    names |= {"reference"} if "directory(paths.reference_dir" in rules else set()
    names = {"curated" if n == "CURATED" else n for n in names}
    assert names <= set(io.DIRECTORY_OUTPUTS), names


def _saved_gmm(tmp_path):
    t = make_target("gmm", {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50})
    real = t.real_data(np.random.default_rng(0), 60, 2)
    model = t.fit(real["train"], np.random.default_rng(1))
    d = tmp_path / "gen1" / "model"
    model.save(d)
    return d


def test_a_model_folder_with_wrong_contents_is_named(tmp_path):
    d = _saved_gmm(tmp_path)
    assert Target.load(d).name == "gmm"
    meta = json.loads((d / "target.json").read_text())
    (d / "target.json").write_text(json.dumps(dict(meta, target="gaussian")))
    with pytest.raises(io.IntermediateFileError, match=f"{d / 'target.json'}.*gaussian.*delete the folder {d} "):
        target_class("gmm").load(d)
    (d / "target.json").write_text(json.dumps(dict(meta, params={"no_such_setting": 1})))
    with pytest.raises(io.IntermediateFileError, match=f"{d / 'target.json'} is not a model description"):
        Target.load(d)
    (d / "target.json").write_text(json.dumps({"params": {}}))
    with pytest.raises(io.IntermediateFileError, match="not a model description"):
        Target.load(d)
    (d / "target.json").write_text(json.dumps(meta))
    io.save_npz(d / "state.npz", other=np.zeros(3))
    # the state is not the one its job wrote: target.json recorded every file's sha256
    with pytest.raises(io.IntermediateFileError, match=f"state.npz is not the file its job wrote.*delete the folder {d} "):
        Target.load(d)
    # a folder without that record (written before it was kept) is still read with care
    (d / "target.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "files"}))
    with pytest.raises(io.IntermediateFileError, match=f"{d} does not hold a valid gmm model.*delete the folder {d} "):
        Target.load(d)


def test_a_torch_state_dict_with_other_keys_is_named(tmp_path):
    pytest.importorskip("torch")
    import torch

    from ouroboros.targets.torch_base import TorchTarget  # noqa: F401  (torch targets load through it)

    t = make_target("vae", {"data": "digits", "epochs": 1, "judge_epochs": 1, "latent": 2, "hidden": 8})
    real = t.real_data(np.random.default_rng(0), 40, 1)
    model = t.fit(real["train"], np.random.default_rng(1))
    d = tmp_path / "gen2" / "model"
    model.save(d)
    # another generation's model (valid, the same keys) in its place: refused, not used silently
    other = tmp_path / "gen3" / "model"
    t.fit(real["train"], np.random.default_rng(2)).save(other)
    shutil.copy(other / "model.pt", d / "model.pt")
    with pytest.raises(io.IntermediateFileError, match=f"model.pt is not the file its job wrote.*delete the folder {d} "):
        Target.load(d)
    meta = json.loads((d / "target.json").read_text())
    (d / "target.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "files"}))
    torch.save({"weight": torch.zeros(2)}, d / "model.pt")
    with pytest.raises(io.IntermediateFileError, match=f"model.pt does not fit the vae model.*delete the folder {d} "):
        Target.load(d)


class _Job:
    """The parts of Snakemake's ``snakemake`` object run_job reads."""

    def __init__(self, log, attempt=1, threads=1):
        self.log = [str(log)]
        self.attempt = attempt
        self.threads = threads
        self.resources = type("R", (), {"gpu": 0})()


@pytest.fixture(autouse=True)
def _keep_this_process_threads(monkeypatch):
    """run_job holds torch to the job's threads (OMP_NUM_THREADS); a user's setting wins, so this keeps the
    test process's own thread count untouched by the in-process jobs below."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)))


def test_a_torch_job_uses_its_threads_not_every_core(tmp_path):
    """Snakemake's script jobs do not set OMP_NUM_THREADS; without run_job's limit each torch job would use every
    core, and --cores N running N of them would oversubscribe the machine.  A user's OMP_NUM_THREADS wins."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from types import SimpleNamespace\n"
            "from ouroboros.logs import run_job\n"
            "def job():\n    import torch\n    print('threads', torch.get_num_threads(), file=sys.__stdout__)\n"
            f"run_job(SimpleNamespace(log=[{str(tmp_path / 'job.log')!r}], attempt=1, threads=int(sys.argv[1]),\n"
            "                        resources=SimpleNamespace(gpu=0)), job)\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}

    def threads(n, **extra):
        out = subprocess.run([sys.executable, "-c", code, str(n)], env=dict(env, **extra),
                             capture_output=True, text=True, check=True).stdout
        return int(out.split()[-1])

    assert threads(1) == 1
    assert threads(2) == 2
    assert threads(1, OMP_NUM_THREADS="2") == 2


def test_a_failure_a_retry_cannot_fix_is_not_recomputed(tmp_path, capsys):
    from ouroboros.logs import run_job
    from ouroboros.settings import ConfigError

    calls = []

    def bad_config():
        calls.append(1)
        raise ConfigError("invalid config at params.d: 0 is less than the minimum of 1")

    log = tmp_path / "job.log"
    with pytest.raises(SystemExit):
        run_job(_Job(log, 1), bad_config)
    with pytest.raises(SystemExit):
        run_job(_Job(log, 2), bad_config)  # Snakemake's retry
    assert calls == [1]
    err = capsys.readouterr().err
    assert "not retried (a retry cannot fix it): ConfigError: invalid config at params.d" in err

    def out_of_memory():
        calls.append(2)
        raise MemoryError("Unable to allocate 80 GiB")

    log2 = tmp_path / "job2.log"
    for attempt in (1, 2):
        with pytest.raises(SystemExit):
            run_job(_Job(log2, attempt), out_of_memory)
    assert calls == [1, 2, 2]  # a transient failure is retried
    # a new run (attempt 1) of the once-bad job runs again (the input may have been fixed)
    with pytest.raises(SystemExit):
        run_job(_Job(log, 1), bad_config)
    assert calls == [1, 2, 2, 1]


def test_a_full_disk_is_one_line_naming_the_disk(tmp_path, capsys):
    from ouroboros.logs import run_job

    def write_to_a_full_disk():
        with open("/dev/full", "w") as fh:
            fh.write("x" * 100_000)
            fh.flush()

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    job = _Job(tmp_path / "job.log")
    job.output = [str(tmp_path / "out" / "metrics.csv")]  # the error names no file: the output's disk is named
    with pytest.raises(SystemExit):
        run_job(job, write_to_a_full_disk)
    err = capsys.readouterr().err.strip()
    mount = tmp_path
    while not os.path.ismount(mount):
        mount = mount.parent
    assert err.count("\n") == 0, err
    assert err.startswith(f"disk full: no space left on {mount}, ") and f"(writing {tmp_path / 'out'}" in err


def test_a_full_disk_behind_other_errors_is_still_found():
    import errno

    from ouroboros.logs import disk_full

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/tmp/x/state.npz")
        except OSError as exc:
            raise RuntimeError("saving failed") from exc
    except RuntimeError as outer:
        line = disk_full(outer)
    assert line.startswith("disk full: no space left on /") and "/tmp/x/state.npz" in line
    assert disk_full(ValueError("x")) is None


KILL_STUDY = {"study": "killed", "seeds": [0], "generations": 99, "tracking": {"enabled": False},
              "experiments": [{"target": "gaussian", "n": 20, "replicates": 200, "block": 25,
                               "regimes": ["replace", "accumulate"]}]}


@pytest.mark.e2e
def test_restart_after_sigkill_with_the_documented_command(tmp_path, snakemake_run):
    """SIGKILL the whole Snakemake process group mid-run; `snakemake --unlock` then the same command finishes
    it, and the table equals an uninterrupted run's byte for byte (README, Reliability)."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from conftest import REPO

    clean = tmp_path / "clean"
    snakemake_run(clean, KILL_STUDY, "--cores", "1")
    work = tmp_path / "killed"
    work.mkdir()
    (work / "study.yaml").write_text(yaml.safe_dump(KILL_STUDY))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "study.yaml"), "--cores", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = work / "results/killed/gaussian/replace/seed0/gens0-24/metrics.csv"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "results/killed/metrics.csv").exists()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode != 0 and "unlock" in again.stdout + again.stderr  # Snakemake's lock is left
    subprocess.run(cmd + ["--unlock"], check=True, capture_output=True)
    subprocess.run(cmd, check=True, capture_output=True)
    assert (work / "results/killed/metrics.csv").read_bytes() == (clean / "results/killed/metrics.csv").read_bytes()


def test_an_intermediate_swapped_for_another_generations_is_refused(tmp_path):
    """Samples and block states carry the sha256 recorded as they were written: another generation's valid file
    in their place (or one damaged in a way the zip checksums miss) is refused by name, not used."""
    a, b = tmp_path / "gen1/samples.npz", tmp_path / "gen2/samples.npz"
    io.save_npz(a, x=np.arange(5.0))
    io.save_npz(b, x=np.arange(5.0) * 2)
    assert io.load_npz(a)["x"][1] == 1.0
    a.write_bytes(b.read_bytes())  # a valid .npz, written for another generation
    with pytest.raises(io.IntermediateFileError, match=r"gen1/samples.npz is not the file its job wrote"):
        io.load_npz(a)
    io.digest_file(a).unlink()  # a file from before digests were recorded is read as before
    assert io.load_npz(a)["x"][1] == 2.0


def test_a_file_cut_short_after_its_job_is_found_by_size(tmp_path):
    """The sizes recorded as the jobs wrote (an .npz's digest file, a model folder's target.json) find a file cut
    short later by a stat, naming what to delete; a generation whose weights keep removed is not damaged."""
    samples = tmp_path / "gen1" / "samples" / "samples.npz"
    io.save_npz(samples, x=np.arange(1000.0))
    model = _saved_gmm(tmp_path)
    assert io.damaged(tmp_path) == []
    samples.write_bytes(samples.read_bytes()[:-100])
    state = model / "state.npz"
    state.write_bytes(state.read_bytes()[:50])
    found = io.damaged(tmp_path)
    assert len(found) == 2 and all("its job wrote" in line and "delete the folder" in line for line in found)
    assert f"delete the folder {model} " in found[0] + found[1]
    state.unlink()
    model.with_name("model.pruned.json").write_text("{}")  # removed on purpose (keep: last)
    assert [line for line in io.damaged(tmp_path) if str(model) in line] == []


@pytest.mark.e2e
def test_a_rerun_stops_on_a_file_cut_short_before_any_job(tmp_path, snakemake_run):
    """Was "Nothing to be done" until a later extension read it."""
    cfg = {"study": "cut", "seeds": [0], "generations": 2, "tracking": {"enabled": False},
           "experiments": [{"name": "gmm", "target": "gmm", "n": 40, "block": 1, "regimes": ["replace"],
                            "params": {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}}]}
    snakemake_run(tmp_path, cfg, "--cores", "2")
    samples = tmp_path / "results/cut/gmm/replace/seed0/gen1/samples/samples.npz"
    samples.write_bytes(samples.read_bytes()[:-10])
    proc = snakemake_run(tmp_path, cfg, "--cores", "2", check=False)
    assert proc.returncode == 1
    assert (f"Error: results/cut/gmm/replace/seed0/gen1/samples/samples.npz has" in proc.stderr
            and "delete the folder results/cut/gmm/replace/seed0/gen1/samples and rerun" in proc.stderr), proc.stderr
