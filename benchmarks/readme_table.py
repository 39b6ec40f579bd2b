"""Write the studies tables of docs/studies.md from measured runs, so their figures are re-measured, never hand-edited.

    .venv/bin/python benchmarks/studies.py default oreilly     # run the studies, record their figures
    .venv/bin/python benchmarks/readme_table.py [--check]      # write them into docs/studies.md

Each row of a studies table (``| `config/...yaml` | experiment | figures |``) whose study has a record in
``benchmarks/records/studies.json`` with headline figures gets its figures cell rewritten from that record: the
headline metrics of the run's ``metrics.csv`` (:data:`studies.HEADLINES`, mean over seeds) with their closed
form where theory gives one, the job count and wall time of the run, and the commit and time it was measured
at.  A row without such a record keeps its hand-written figures, stamped with the commit that last wrote them
(``git blame``) until a run replaces them.  ``--check`` only reports which rows would change.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS  # noqa: E402

#: the page holding the studies tables (the README links to it)
STUDIES_PAGE = "docs/studies.md"
#: what a study's figures are compared with, beside its closed form (not measured here)
NOTES = {"oreilly": "article: about 0.45, between 0.4 and 0.5", "oreilly-10k": "article: about 0.0004"}
ROW = re.compile(r"^\| `config/(?:studies/)?(?P<study>[\w.-]+)\.yaml` \| (?P<what>.*?) \| (?P<figures>.*) \|$")
STAMP = re.compile(r" \*\((measured at|figures written at) `[0-9a-f]+`[^)]*\)\*$")


def _num(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:#.3g}".rstrip(".")


def _wall(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def figures(record: dict) -> str:
    """The figures cell of a measured study."""
    parts = []
    theory = record.get("theory", {})
    for key, value in record["headline"].items():
        m = re.fullmatch(r"(\w+)@(\d+) \((.+)\)", key)
        metric, gen, chain = m.group(1), int(m.group(2)), m.group(3)
        text = f"`{metric}` at generation {gen:,} ({chain}): **{_num(value)}**"
        if key in theory:
            text += f" (closed form {_num(theory[key])})"
        parts.append(text)
    if record["study"] in NOTES:
        parts.append(NOTES[record["study"]])
    run = f"{record['jobs']:,} jobs, " if record.get("jobs") else ""
    run += f"{_wall(record['wall_on_s'])} wall with tracking"
    if record.get("tracking_share", 0) > 0:
        run += f" ({record['tracking_share']:.0%} of it tracking)"
    elif "tracking_share" in record:  # the run without tracking took longer: the difference is noise
        run += f" (tracking's share below run-to-run noise: {_wall(record['wall_off_s'])} without it)"
    parts.append(run)
    return "; ".join(parts) + f" *(measured at `{record['commit']}`, {record['measured']})*"


def blame(line_no: int) -> str:
    out = subprocess.run(["git", "-C", str(REPO), "blame", "-L", f"{line_no},{line_no}", "--porcelain", STUDIES_PAGE],
                         capture_output=True, text=True).stdout
    return out.split()[0][:7] if out else "unknown"


def rewrite(text: str, records: dict) -> tuple[str, list[str]]:
    lines, changed = text.split("\n"), []
    for i, line in enumerate(lines):
        m = ROW.match(line)
        if not m:
            continue
        study, cell = m.group("study"), m.group("figures")
        study = "default" if study == "config" else study  # config/config.yaml is the default study
        record = records.get(study)
        if record and record.get("headline") and record.get("jobs"):  # a record of this version of studies.py
            new = figures(record)
        elif STAMP.search(cell):
            continue
        else:
            new = f"{cell} *(figures written at `{blame(i + 1)}`, not yet re-measured by benchmarks/studies.py)*"
        row = f"| `{line.split('`')[1]}` | {m.group('what')} | {new} |"
        if row != line:
            lines[i] = row
            changed.append(study)
    return "\n".join(lines), changed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="only say which rows would change")
    args = ap.parse_args()
    path = RESULTS / "studies.json"
    records = {r["study"]: r for r in json.loads(path.read_text())["studies"]} if path.is_file() else {}
    readme = REPO / STUDIES_PAGE
    text, changed = rewrite(readme.read_text(), records)
    print(("would change: " if args.check else "rewrote: ") + (", ".join(changed) or "nothing"))
    if not args.check:
        readme.write_text(text)


if __name__ == "__main__":
    main()
