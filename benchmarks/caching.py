"""Caching that holds (issue 33): what a setting change re-runs, and what a pretrained study stores.

Two measurements, each of a checkout given by ``--code`` (default: this one), so that the figures before and
after a change come from the same script:

* ``reruns``: the default study run once in a fresh folder, then Snakemake's dry-run job counts by rule after
  one change of each kind: an evaluate-only setting (the LM's ``repetition_n``, the VAE's ``iwae_k``, the
  GMM's ``eval_size``), a sample-only one (the LM's ``temperature``, lam), a fit one (the Gaussian's ``ddof``)
  and one no result depends on (the LM's ``threads``).
* ``storage``: the offline SmolLM2 study shrunk to one seed, one generation and n = 2, tracked: bytes on disk
  (results, MLflow, the backbone cache; hard links counted once), per trained generation against its weights,
  and how many times the model was converted.

Run: ``.venv/bin/python benchmarks/caching.py reruns storage [--code ../before] [--name before]`` (reruns: about
4 min on 2 cores; storage: 3-6 min, the conversions included).  Writes ``records/caching-{name}.json``.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, save  # noqa: E402


def _snakemake(code: Path, work: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    (work / "study.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=str(code / "workflow"), MLFLOW_DISABLE_TELEMETRY="true")
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(code / "Snakefile"), "--directory", str(work),
                           "--configfile", str(work / "study.yaml"), *args], capture_output=True, text=True, env=env)


def _counts(out: str) -> dict[str, int]:
    rows = re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M)
    return {k: int(v) for k, v in rows} or ({"total": 0} if "Nothing to be done" in out else {})


def _with(config: dict, exp: str, key: str, value) -> dict:
    out = copy.deepcopy(config)
    e = next(x for x in out["experiments"] if x["name"] == exp)
    if key == "lam":
        e["lam"] = value
    else:
        e.setdefault("params", {})[key] = value
    return out


CHANGES = {
    "evaluate: lm repetition_n 4 -> 3": ("lm", "repetition_n", 3),
    "evaluate: vae iwae_k 20 -> 10": ("vae", "iwae_k", 10),
    "evaluate: gmm eval_size 4000 -> 3000": ("gmm", "eval_size", 3000),
    "sample: lm temperature 1 -> 0.9": ("lm", "temperature", 0.9),
    "sample: gmm lam 1 -> 0.9": ("gmm", "lam", 0.9),
    "fit: gaussian ddof 0 -> 1": ("gaussian", "ddof", 1),
    "none: lm threads 1 -> 2": ("lm", "threads", 2),
}


def reruns(code: Path) -> dict:
    config = yaml.safe_load((code / "config" / "config.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        proc = _snakemake(code, work, config, "--cores", "2")
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        out = {"default_study_s": round(time.perf_counter() - t, 1),
               "jobs": _counts(_snakemake(code, work, config, "-n", "--quiet", "rules").stdout) or
               {"total": 0}}
        first = _counts(proc.stdout + proc.stderr)
        out["first_run_jobs"] = first.get("total") or len(re.findall(r"^\s*(?:local)?rule \w+:", proc.stdout + proc.stderr,
                                                                       flags=re.M))
        out["changes"] = {}
        for name, (exp, key, value) in CHANGES.items():
            dry = _snakemake(code, work, _with(config, exp, key, value), "-n", "--quiet", "rules")
            out["changes"][name] = _counts(dry.stdout + dry.stderr)
            print(f"{name}: {out['changes'][name]}", flush=True)
    return out


def _disk(root: Path) -> int:
    """Bytes of the files under ``root``, each inode once (hard links shared by results and MLflow)."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def storage(code: Path) -> dict:
    config = yaml.safe_load((code / "config" / "studies" / "smollm-wikitext.yaml").read_text())
    config["generations"] = 1
    for e in config["experiments"]:
        e["n"] = 2
    with tempfile.TemporaryDirectory(dir=REPO.parent) as tmp:  # beside the checkout: ../shared/data resolves
        work = Path(tmp) / "work"
        work.mkdir()
        config = copy.deepcopy(config)
        for e in config["experiments"]:
            for k in ("train", "test"):
                e["params"][k] = str((REPO / e["params"][k]).resolve())
        t = time.perf_counter()
        proc = _snakemake(code, work, config, "--cores", "2")
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        seconds = time.perf_counter() - t
        results = work / "results"
        weights = [p for p in results.rglob("model.safetensors") if "/gen" in str(p) and "mlartifacts" not in str(p)]
        converted = sorted(p.parent for p in results.rglob("backbone.json"))
        logs = "".join(p.read_text(errors="replace") for p in results.rglob("*.log"))
        out = {"seconds": round(seconds, 1),
               "conversions": len(re.findall(r"saved as safetensors", logs)),
               "backbone_bytes": sum(_disk(p) for p in converted),
               "trained_generations": len(weights),
               "weights_bytes": sum(p.stat().st_size for p in weights),
               "total_bytes": _disk(results),
               "mlflow_bytes": _disk(results / "mlartifacts") if (results / "mlartifacts").is_dir() else 0}
        out["per_generation_ratio"] = round((out["total_bytes"] - out["backbone_bytes"]) / max(out["weights_bytes"], 1), 3)
        out["study_ratio"] = round(out["total_bytes"] / max(out["backbone_bytes"] // max(out["conversions"], 1)
                                                            + out["weights_bytes"], 1), 3)
        print(out, flush=True)
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="+", choices=["reruns", "storage"])
    ap.add_argument("--code", default=str(REPO), help="the checkout to measure (default: this one)")
    ap.add_argument("--name", default="after")
    a = ap.parse_args()
    code = Path(a.code).resolve()
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    out = {"code": str(code), "code_commit": commit + (" (with uncommitted changes)" if dirty else "")}
    for what in a.what:
        out[what] = {"reruns": reruns, "storage": storage}[what](code)
    save(f"caching-{a.name}", out)


if __name__ == "__main__":
    main()
