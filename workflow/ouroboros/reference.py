"""The README's reference table: the published claims every shipped study checks, against what its last run
here measured (``ouroboros claims --table``).

A run's ``results/{study}/claims.csv`` is recorded in ``docs/claims/{study}.csv`` (stamped with the date it was
measured; the commit is in every row), and the table between the README's markers is written from those records
alone, so a test can hold the README to them on a machine that ran nothing.
"""
from __future__ import annotations

import csv
import datetime as dt
from io import StringIO
from pathlib import Path
from typing import Sequence

from ouroboros import io
from ouroboros.claims import measured_text

BEGIN = "<!-- reference table: written by `ouroboros claims --table`; do not edit by hand -->"
END = "<!-- end of the reference table -->"
RECORDS = Path("docs") / "claims"


def record(repo: Path, results: Path, studies: Sequence[str] = ()) -> list[str]:
    """Copy each study's ``claims.csv`` (all found under ``results`` where ``studies`` is empty) into the records,
    with the date it was written; return the studies recorded."""
    out = []
    found = sorted(results.glob("*/claims.csv")) if not studies else [results / s / "claims.csv" for s in studies]
    for path in found:
        if not path.is_file():
            raise FileNotFoundError(f"no claims.csv for study {path.parent.name}: run it first ({path})")
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            continue
        when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d")
        for row in rows:
            row["date"] = when
        target = repo / RECORDS / f"{path.parent.name}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        buf = StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        io.save_text(target, buf.getvalue())
        out.append(path.parent.name)
    return out


def table(repo: Path) -> str:
    """The reference table (markdown) from the records, one row per claim, studies in name order."""
    lines = ["| study | claim (source; meaning of collapse) | expected | measured [95% interval], seeds | verdict | "
             "measured at |", "| --- | --- | --- | --- | --- | --- |"]
    for path in sorted((repo / RECORDS).glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                need = f" (seeds needed: {row['seeds_needed']})" if row.get("seeds_needed") else ""
                meaning = f"; {row['definition']}" if row.get("definition") else ""
                lines.append(f"| `{path.stem}` | {row['claim']} ({row['source']}{meaning}) | {row['expected']} | "
                             f"{measured_text(row)} | **{row['verdict']}**{need} | "
                             f"`{row['commit']}`, {row['date']} |")
    return "\n".join(lines)


def rewrite(readme: Path, repo: Path) -> bool:
    """Write the table between the README's markers; True where it changed."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no reference table markers ({BEGIN} ... {END})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table(repo)}\n{END}{tail}"
    if new != text:
        io.save_text(readme, new)
    return new != text


def current(readme: Path, repo: Path) -> bool:
    """Whether the README's table is the one the records give."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return False
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip() == table(repo).strip()
