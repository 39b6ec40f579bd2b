"""Exact dedup of categories on counts: a categorical study with and without a dedup step, end to end.

    .venv/bin/python benchmarks/dedup_counts.py

1,000 replicates x 1,000 generations, K = 10, n = 100, replace, tracking off: the study with
``curation: {selector: dedup}`` and without it (both on counts under ``method: auto``), and the dedup study
forced onto items (a scorer scores items: how every dedup study ran before dedup went onto counts).  Writes
benchmarks/records/dedup-counts.json.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_study, save  # noqa: E402


def study(name: str, curation: dict | None, method: str = "auto") -> dict:
    exp = {"name": "categorical", "target": "categorical", "n": 100, "replicates": 1000, "block": 1000,
           "regimes": ["replace"], "params": {"K": 10, "method": method}}
    if curation:
        exp["curation"] = curation
    return {"study": name, "seeds": [0], "generations": 1000, "tracking": {"enabled": False}, "experiments": [exp]}


def main() -> None:
    cases = {"no-dedup": study("plain", None), "dedup-counts": study("dedup", {"selector": "dedup"}),
             "dedup-items": study("dedup-items", {"selector": "dedup", "scorer": "truth"}, method="sample")}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in cases.items():
            work = Path(tmp) / name
            work.mkdir()
            (work / "study.yaml").write_text(yaml.safe_dump(cfg))
            run = run_study(work, [work / "study.yaml"])
            out[name] = {"wall_s": round(run["wall_s"], 1),
                         "block_s": round(sum(run["jobs"].get("block", [])), 1)}
            print(name, out[name], flush=True)
    out["dedup_vs_plain_wall"] = round(out["dedup-counts"]["wall_s"] / out["no-dedup"]["wall_s"], 2)
    out["items_vs_counts_wall"] = round(out["dedup-items"]["wall_s"] / out["dedup-counts"]["wall_s"], 2)
    print(out)
    save("dedup-counts", out)


if __name__ == "__main__":
    main()
