"""``ouroboros`` on the command line.

``ouroboros check FILE [FILE ...]``: check study config files as ``snakemake --configfile FILE ...`` would
read them (over config/config.yaml), without running the study: YAML syntax (with the line), the schemas, sweep
plots, job sizes and count, the tracking folder; then what the study will cost (:mod:`ouroboros.costs`): the
largest job's memory, the disk it writes, and its time from a short probe of each experiment (``--no-time``
skips it).  Snakemake reads ``--configfile`` itself before the workflow starts, and its YAML error names no line;
this command does.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from ouroboros import costs, preflight, reference
from ouroboros.settings import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _check(args) -> int:
    try:
        prepared = preflight.check_files(args.files, args.repo)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    study = prepared.study
    if prepared.yte:  # snakemake's dry run would run the Python in it: the job count from the plan instead
        jobs = preflight.job_count(study, prepared.tracking["enabled"])
        how = f"from the plan: {', '.join(prepared.yte)} opts in to YTE templating, which snakemake -n would run"
    else:
        how = "as snakemake -n counts them"
        try:
            jobs = scheduled_jobs(args.files, args.repo)
        except RuntimeError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    print(f"{study.name}: {len(study.experiments)} experiment(s), {len(study.chains)} chain(s), "
          + (f"{jobs:,} jobs to run here" if jobs else "nothing to run here (every result is present)")
          + f" ({how}); tracking "
          + (prepared.tracking["uri"] if prepared.tracking["enabled"] else "off"))
    est = prepared.costs
    if args.time and jobs:
        try:
            costs.timed(est, study, args.cores)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"  time: not estimated ({exc})")
    for line in costs.describe(est, study.name, args.cores):
        print(line)
    return 0


def scheduled_jobs(files: Sequence[str], repo, cwd=None) -> int:
    """How many jobs Snakemake would run in ``cwd`` now (its own dry run: the exact count, less what is
    already computed there)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(Path(repo) / "Snakefile"), "-n", "--quiet", "rules",
           "--nolock"]
    for f in files:
        cmd += ["--configfile", str(f)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    out = proc.stdout + proc.stderr
    if proc.returncode:
        lines = [line for line in out.splitlines() if line.strip()]
        raise RuntimeError("snakemake's dry run failed: " + (lines[-1] if lines else f"exit {proc.returncode}"))
    totals = re.findall(r"^total\s+(\d+)\s*$", out, flags=re.M)
    if totals:
        return int(totals[-1])
    if "Nothing to be done" in out:
        return 0
    raise RuntimeError("snakemake's dry run printed no job count")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ouroboros", description="Ouroboros: model-collapse studies.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check study config files before running them")
    check.add_argument("files", nargs="*", help="config files, later ones overriding earlier (as --configfile)")
    check.add_argument("--repo", default=str(REPO), help="the checkout holding config/ (default: this one)")
    check.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                       help="cores the time estimate spreads the jobs over (default: this machine's)")
    check.add_argument("--no-time", dest="time", action="store_false",
                       help="skip the time estimate (its probe runs each experiment's fit, sample and evaluate at a "
                            "small size: seconds, a minute for a pretrained model)")
    check.set_defaults(func=_check)
    cl = sub.add_parser("claims", help="the README's reference table of every shipped study's claims")
    cl.add_argument("--table", action="store_true",
                    help="record results/*/claims.csv (or the --study ones) in docs/claims/ and rewrite the README's "
                         "reference table from the records")
    cl.add_argument("--study", action="append", default=[], help="record only this study's claims (repeatable)")
    cl.add_argument("--check", action="store_true", help="exit 1 where the README's table is not the records'")
    cl.add_argument("--repo", default=str(REPO), help="the checkout holding README.md and docs/ (default: this one)")
    cl.add_argument("--results", default="results", help="the results folder the runs wrote (default: results)")
    cl.set_defaults(func=_claims)
    args = parser.parse_args(argv)
    return args.func(args)


def _claims(args) -> int:
    repo = Path(args.repo)
    readme = repo / "README.md"
    if args.check:
        ok = reference.current(readme, repo)
        print("the README's reference table is the records'" if ok else
              "the README's reference table differs from docs/claims/: run ouroboros claims --table")
        return 0 if ok else 1
    if not args.table:
        print("ouroboros claims: say --table (record and rewrite) or --check", file=sys.stderr)
        return 2
    try:
        done = reference.record(repo, Path(args.results), args.study)
    except FileNotFoundError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    changed = reference.rewrite(readme, repo)
    print(f"recorded {', '.join(done) or 'no study'} in {reference.RECORDS}/; README.md's reference table "
          f"{'rewritten' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
