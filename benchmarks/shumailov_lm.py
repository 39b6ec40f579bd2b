"""shumailov-lm's tracking: its cost measured on the study with the compute shrunk, its share bounded with the
study's training compute at full size.

    .venv/bin/python benchmarks/shumailov_lm.py [--cores N]

The shipped study (config/studies/shumailov-lm.yaml: WikiText-2 from Hugging Face; 5 seeds x 2 regimes x 10
generations of a 14M-parameter GPT, each trained for about 1,200 steps of 64 x 128 tokens and writing 30,000
continuations by 5-way beam search) is sized for a GPU: about ten days of training alone on this 2-core machine,
and the WikiText-2 training split is not here offline.  What tracking costs does not depend on how long the
compute took but on what is logged: the same runs (tracking every generation, as shipped), the same
full-size models, metrics and inputs.  So the study runs once, tracking on, exactly as shipped except for its
data and compute: corpus ``files`` (WikiText-2's validation text, ../shared/data/wikitext-2/valid.txt, as the
training text; the first lines of test.txt as the test text), ``n`` 10 continuations, 1 epoch of batches of 8,
sampled instead of beam-searched (5 beams took 68 s for 64 continuations here), on the CPU.

Tracking's share of the full-size study is then at most ``tracking / (tracking + training)``, where training is
the study's 95 trainings (generation 0 is shared by the regimes) at the tokens/s this network trains at
(``records/throughput-{cpu,cuda}.json``, "LM paper", the same network): an upper bound, since the beam search
and the evaluations are left out.
Writes ``records/shumailov-lm.json``.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, machine, run_study, save, tracking_jobs  # noqa: E402

from ouroboros.targets import make_target  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "wikitext-2"
SHRUNK = {"n": 10, "epochs": 1, "batch_size": 8, "decoding": "sample", "device": "cpu", "test_lines": 200}


def shrunk_config(tmp: Path) -> tuple[dict, dict]:
    """(the shipped config, the shrunk copy run here)."""
    shipped = yaml.safe_load((REPO / "config" / "studies" / "shumailov-lm.yaml").read_text())
    test = tmp / "test-head.txt"
    with open(DATA / "test.txt", encoding="utf-8") as f:
        test.write_text("".join(line for _, line in zip(range(SHRUNK["test_lines"]), f)), encoding="utf-8")
    cfg = copy.deepcopy(shipped)
    exp = cfg["experiments"][0]
    exp["n"] = SHRUNK["n"]
    for key in ("hf_name", "hf_config"):
        exp["params"].pop(key, None)
    exp["params"].update(corpus="files", train=str(DATA / "valid.txt"), valid="", test=str(test),
                         **{k: SHRUNK[k] for k in ("epochs", "batch_size", "decoding", "device")})
    return shipped, cfg


def training_tokens(shipped: dict) -> tuple[int, int]:
    """(trainings, tokens each) of the shipped study: every chain's generations 1.. plus generation 0 once per
    seed (shared by the regimes)."""
    exp = shipped["experiments"][0]
    target = make_target("lm", exp["params"])
    p = target.p
    seeds, gens, regimes = len(shipped["seeds"]), shipped["generations"], len(exp["regimes"])
    trainings = seeds * (1 + regimes * gens)
    items_tokens = exp["n"] * (p["seq_len"] + 1)  # continuations of seq_len tokens, each after an end-of-text token
    return trainings, target.backbone_.steps(exp["n"], items_tokens) * p["batch_size"] * p["block_size"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=0, help="default: every core")
    args = ap.parse_args()
    if not (DATA / "valid.txt").is_file() or not (DATA / "test.txt").is_file():
        raise SystemExit(f"needs WikiText-2's valid.txt and test.txt in {DATA} (see ../shared/data/SOURCES.md)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shipped, cfg = shrunk_config(tmp)
        path = tmp / "shumailov-lm-shrunk.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        on = run_study(tmp / "on", [path], args.cores)
        models = sorted((tmp / "on" / "results").rglob("model.pt"))
        model_mb = round(models[0].stat().st_size / 2**20, 1) if models else None
    jobs = {k: round(sum(v), 1) for k, v in on["jobs"].items()}
    count, tracking_s = tracking_jobs(on["jobs"])
    tracking_s = round(tracking_s, 1)
    trainings, tokens = training_tokens(shipped)
    row = {"study": "shumailov-lm", "shrunk": {**SHRUNK, "corpus": "files: wikitext-2 valid.txt (train), test.txt head (test)"},
           "wall_shrunk_s": on["wall_s"], "jobs_shrunk_s": jobs, "tracking_job_s": tracking_s,
           "tracking_jobs": count,
           "model_mb": model_mb, "trainings": trainings, "training_tokens_each": tokens, "bound": {}}
    print(f"shumailov-lm, compute shrunk: {on['wall_s']:.0f} s wall; tracking jobs {tracking_s:.1f} s "
          f"({row['tracking_jobs']} jobs; models of {model_mb} MB)")
    for device in ("cpu", "cuda"):
        rec = RESULTS / f"throughput-{device}.json"
        if not rec.is_file():
            continue
        r = json.loads(rec.read_text())
        tps = r["lm_paper"]["ours_tokens_per_s"]
        train_s = trainings * tokens / tps
        share = tracking_s / (tracking_s + train_s)
        row["bound"][device] = {"tokens_per_s": tps, "measured": r["measured"], "machine": r["machine"].get("gpu", r["machine"]["cpu"]),
                                "training_s": round(train_s), "tracking_share_at_most": round(share, 4)}
        print(f"  {device}: {trainings} trainings x {tokens:,} tokens at {tps:,} tokens/s = {train_s / 3600:.1f} h of "
              f"training; tracking's share at most {share:.2%} (target <= 15%)")
    row["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    row["commit"] = machine()["commit"]
    save("shumailov-lm", row)


if __name__ == "__main__":
    main()
