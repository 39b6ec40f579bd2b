"""Compare two metrics tables row by row: which (experiment, regime, seed, metric, generation) rows differ.

    python benchmarks/compare.py BEFORE/metrics.csv AFTER/metrics.csv

Run the comparison study (benchmarks/configs/comparison.yaml) on the commit before a change and on the
change (``snakemake results/comparison/metrics.csv --configfile benchmarks/configs/comparison.yaml`` in
two checkouts), then compare: a change that must not move any number prints "identical".
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

KEY = ["experiment", "regime", "seed", "metric", "generation"]


def compare(before: str, after: str) -> int:
    a, b = pd.read_csv(before), pd.read_csv(after)
    merged = a.merge(b, on=KEY, how="outer", suffixes=("_before", "_after"), indicator=True)
    only = merged[merged["_merge"] != "both"]
    both = merged[merged["_merge"] == "both"]
    same = (both["value_before"] == both["value_after"]) | (both["value_before"].isna() & both["value_after"].isna())
    differ = both[~same]
    print(f"{len(a)} rows before, {len(b)} after; {len(both)} in both, {int(same.sum())} identical, "
          f"{len(differ)} differ, {len(only)} in one table only")
    if len(differ):
        print(differ.groupby(["experiment", "regime"]).size().to_string())
        print(differ[KEY + ["value_before", "value_after"]].head(20).to_string(index=False))
    if len(only):
        print(only[KEY + ["_merge"]].head(20).to_string(index=False))
    if not len(differ) and not len(only):
        print("identical")
    return 1 if len(differ) or len(only) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args(argv)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
