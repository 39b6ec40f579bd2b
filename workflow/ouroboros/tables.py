"""The study's tables: a narrow metrics table, the settings of each (experiment, regime), a summary.

``metrics.csv``: study, experiment, target, regime, seed, generation, metric, value (one row per chain,
generation and metric).  ``settings.csv``: one row per (experiment, regime) with every setting (regime kind,
n, lam, rho, replicates, the target's and curation's settings).  ``summary.csv``: the last generation of
each experiment x regime x metric, mean / min / max over seeds.  :func:`read_study` joins the first two.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

NARROW = ("study", "experiment", "target", "regime", "seed", "generation", "metric", "value")
KEY = ("experiment", "regime")


def settings_path(metrics_csv) -> Path:
    return Path(metrics_csv).with_name("settings.csv")


def settings_rows(chains: Sequence[dict]) -> list[dict]:
    """One row per (experiment, regime): the chain columns that are settings (not seed or narrow keys)."""
    rows, seen = [], set()
    for columns in chains:
        key = tuple(columns[k] for k in KEY)
        if key in seen:
            continue
        seen.add(key)
        rows.append({**{k: columns[k] for k in KEY},
                     **{k: v for k, v in columns.items() if k not in NARROW}})
    return rows


def summary(table) -> "object":
    """The last generation of every experiment x regime x metric: mean, min, max over seeds."""
    import pandas as pd

    if table.empty:
        return pd.DataFrame(columns=["experiment", "regime", "metric", "generation", "seeds", "mean", "min", "max"])
    last = table.groupby(["experiment", "regime"])["generation"].transform("max")
    rows = table[table["generation"] == last]
    out = rows.groupby(["experiment", "regime", "metric"], sort=False).agg(
        generation=("generation", "first"), seeds=("seed", "nunique"), mean=("value", "mean"),
        min=("value", "min"), max=("value", "max")).reset_index()
    return out


def read_study(metrics_csv):
    """The metrics table with the settings columns joined (what plots and sweep plots read)."""
    import pandas as pd

    table = pd.read_csv(metrics_csv)
    settings = settings_path(metrics_csv)
    if settings.is_file():
        extra = pd.read_csv(settings, low_memory=False)
        table = table.merge(extra, on=list(KEY), how="left", validate="many_to_one")
    return table


def write_csv(frame, path) -> None:
    """Write atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
