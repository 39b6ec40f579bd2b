"""What a ``snakemake`` command line asks of this workflow, read from its arguments before Snakemake acts on
them: the config files it names, where the Snakefile is this workflow's.

Snakemake opens ``--configfile`` itself, before the workflow (and its checks) starts: a FIFO waits for a writer
for ever, ``/dev/zero`` is read until memory runs out, a missing file or a folder is a traceback, an empty or
list-valued file a bare ``WorkflowError``.  The logger plugin (imported while Snakemake builds its argument
parser, before it reads the files) refuses such a file first, with the one line ``ouroboros check`` gives.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

#: the Snakefile names Snakemake looks for when ``-s`` is not given (in the folder it is started in)
DEFAULT_SNAKEFILES = ("Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile")
#: the files beside the Snakefile that make it this workflow's
MARKERS = ("rules/common.smk", "workflow/ouroboros/preflight.py")


def _values(argv: Sequence[str], names: Sequence[str]) -> Optional[list[str]]:
    """The values of the last of ``names`` on the command line (``--name A B``, ``--name=A``), or None."""
    found = None
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name not in names:
            continue
        if eq:
            found = [value]
            continue
        found = []
        for later in argv[i + 1:]:
            if later.startswith("-"):
                break
            found.append(later)
    return found


def is_job_step(argv: Sequence[str]) -> bool:
    """A job Snakemake started (``--mode subprocess|remote``), which rereads what the main process checked."""
    mode = _values(argv, ("--mode",))
    return bool(mode) and mode[0] in ("subprocess", "remote")


def snakefile(argv: Sequence[str], cwd: Path) -> Optional[Path]:
    """The Snakefile this command line runs (``-s``/``--snakefile``, else the first default name in ``cwd``)."""
    given = _values(argv, ("-s", "--snakefile"))
    if given:
        return cwd / given[0]
    return next((cwd / name for name in DEFAULT_SNAKEFILES if (cwd / name).is_file()), None)


def is_this_workflow(path: Optional[Path]) -> bool:
    if path is None:
        return False
    root = Path(path).resolve().parent
    return all((root / marker).is_file() for marker in MARKERS)


def configfiles(argv: Sequence[str], cwd: Optional[Path] = None) -> list[Path]:
    """The ``--configfile`` files of a ``snakemake`` command line that runs this workflow (relative ones as
    Snakemake opens them: from ``cwd``); none for another workflow's command line or a job step."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    files = _values(argv, ("--configfile", "--configfiles"))
    if not files or is_job_step(argv) or not is_this_workflow(snakefile(argv, cwd)):
        return []
    return [cwd / f for f in files]
