"""Print the tables of benchmarks/README.md from benchmarks/records/*.json (so the README shows what was measured).

    .venv/bin/python benchmarks/table.py
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "records"


def load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def where(rec) -> str:
    m = rec["machine"]
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return f"{m.get('cpu', 'CPU')}, {m['cores']} cores{gpu}; {rec['measured']}, commit {m.get('commit', '?')}"


def oreilly(r):
    print(f"### O'Reilly end to end ({where(r)})\n")
    print("| figure | measured | target |\n| --- | --- | --- |")
    print(f"| the script loop (1,000 × 1,000 × `rng.normal(mu, sd, 1000)`, mean, std) | {r['script_loop_s']:.1f} s | baseline |")
    print(f"| numpy's floor: 10⁹ standard normals on {r['numpy_floor_threads']} threads | {r['numpy_floor_s']:.1f} s | |")
    print(f"| pipeline, tracking on (snakemake from scratch, as shipped) | {r['pipeline_wall_s']:.1f} s = "
          f"**{r['speedup_vs_loop']:.2f}×** faster than the loop | ≥ 2× |")
    print(f"| pipeline, tracking off | {r['pipeline_no_tracking_wall_s']:.1f} s "
          f"({r['script_loop_s'] / r['pipeline_no_tracking_wall_s']:.2f}× the loop) | |")
    print(f"| tracking's share of the wall time | {r['tracking_share']:.0%} | ≤ 15% |")
    print(f"| compute: the block jobs | {r['compute_job_s']:.1f} s = **{r['compute_vs_floor']:.2f}×** the floor | ≤ 1.3× |")
    if "generation_loop_s" in r:
        print(f"| of which the generation loop | {r['generation_loop_s']:.1f} s = "
              f"{r['generation_loop_s'] / r['numpy_floor_s']:.2f}× the floor | |")
        print(f"| `method: sufficient`: generation loop (whole job) | **{r['sufficient_generation_loop_s']:.2f} s** "
              f"({r['sufficient_compute_job_s']:.2f} s) | < 1 s |")
    print("| job seconds, tracking on | " + ", ".join(f"{k} {v:.1f}" for k, v in r["jobs_on"].items()) + " | |\n")


def studies(r):
    print(f"### Shipped studies, tracking on and off ({where(r)})\n")
    print("| study | wall, tracking on | off | tracking's share (≤ 15%) | tracking jobs | generation 0 shared saves | measured |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in r["studies"]:
        g = s.get("gen0")
        saved = ""
        if g:
            parts = ", ".join("%s: %d regime%s x %.0f s" % (k, v["regimes"], "s"[: v["regimes"] != 1], v["gen0_job_s"])
                             for k, v in g["experiments"].items())
            saved = f"{g['saved_job_s']:.0f} job-s, {g['saved_share_of_unshared']:.0%} of the study's job time ({parts})"
        if "wall_off_s" in s:
            off, share = f"{s['wall_off_s']:.1f} s", f"{s['tracking_share']:.0%}"
        else:  # --once: one run, tracking's share of the job seconds
            off, share = "not run", f"{s['tracking_job_share']:.0%} of the job seconds ({s['tracking_job_s']:.0f} s)"
        when = f"{s['measured']}, {s['commit']}" if "measured" in s else "with the record"
        print(f"| {s['study']} | {s['wall_on_s']:.1f} s | {off} | {share} | {s['tracking_jobs']} | {saved} | {when} |")
    print()


def shumailov_lm(r):
    print(f"### shumailov-lm: tracking measured with the compute shrunk, its share bounded at full size ({where(r)})\n")
    sh = r["shrunk"]
    print("| figure | measured | target |\n| --- | --- | --- |")
    print(f"| the study as shipped but n {sh['n']}, {sh['epochs']} epoch of batches of {sh['batch_size']}, "
          f"decoding {sh['decoding']}, {sh['device']}, {sh['corpus']} | "
          f"{r['wall_shrunk_s']:.0f} s wall | |")
    print(f"| its tracking jobs ({r['tracking_jobs']}; every generation's run, models of {r['model_mb']} MB) | "
          f"{r['tracking_job_s']:.1f} s | |")
    for dev, b in r["bound"].items():
        print(f"| full size on {b['machine']}: {r['trainings']} trainings x {r['training_tokens_each']:,} tokens at "
              f"{b['tokens_per_s']:,} tokens/s ({b['measured']}) | {b['training_s'] / 3600:.1f} h of training; "
              f"tracking's share **at most {b['tracking_share_at_most']:.2%}** | ≤ 15% |")
    print()


def throughput(r, label):
    print(f"### VAE / LM training throughput and KV cache, {label} ({where(r)})\n")
    print("| network | ours | reference loop | ratio (≥ 1.0) | KV cache vs recompute, 256 new tokens (≥ 5×) |")
    print("| --- | --- | --- | --- | --- |")
    for size in ("small", "paper"):
        v, lm, kv = r.get(f"vae_{size}"), r.get(f"lm_{size}"), r.get(f"kv_{size}")
        if v:
            print(f"| VAE {size} | {v['ours_images_per_s']:,} images/s | {v['reference_images_per_s']:,} | {v['ratio']:.2f} | |")
        if lm:
            print(f"| LM {size} | {lm['ours_tokens_per_s']:,} tokens/s | {lm['reference_tokens_per_s']:,} | {lm['ratio']:.2f} | "
                  f"{kv['kv_cache_tokens_per_s']:,} vs {kv['recompute_tokens_per_s']:,} tokens/s ({kv['prompts']} prompts): "
                  f"**{kv['speedup']:.1f}×** |")
    print()


def chains(r, label):
    print(f"### One chain per generation, {label} ({where(r)})\n")
    print("| study (first experiment, regime) | generation | fit | draw | evaluate |\n| --- | --- | --- | --- | --- |")
    for c in r["chains"]:
        for g in c["generations"]:
            print(f"| {c['study']} ({c['experiment']}, {c['regime']}) | {g['generation']} | {g['fit_s']:.1f} s | "
                  f"{g['draw_s']:.1f} s | {g['evaluate_s']:.1f} s |")
    print()


def scaling(r):
    print(f"### Scaling ({where(r)}); plot: `records/scaling.png`\n")
    print("| target (base point) | factor | values → seconds | log-log slope |\n| --- | --- | --- | --- |")
    for t, d in r["targets"].items():
        base = ", ".join(f"{k} {v}" for k, v in d["base"].items())
        for f, row in d["factors"].items():
            pts = ", ".join(f"{p['value']:,} → {p['seconds']:.3g}" for p in row["points"])
            print(f"| {t} ({base}) | {f} | {pts} | {row['loglog_slope']:.2f} |")
    if "sweep" in r:
        s = r["sweep"]
        print(f"\nA sweep of {s['chains']:,} chains (one Gaussian block job each, tracking off): "
              f"**{s['jobs']:,} jobs**, `snakemake -n` builds the DAG in **{s['dry_run_s']:.1f} s**.")
    print()


def main():
    for name, fn in (("oreilly", oreilly), ("studies", studies), ("shumailov-lm", shumailov_lm), ("scaling", scaling)):
        r = load(name)
        if r:
            fn(r)
    for dev, label in (("cpu", "CPU"), ("cuda", "H100")):
        r = load(f"throughput-{dev}")
        if r:
            throughput(r, label)
    for dev, label in (("cpu", "CPU"), ("cuda", "H100")):
        r = load(f"chains-{dev}")
        if r:
            chains(r, label)


if __name__ == "__main__":
    main()
