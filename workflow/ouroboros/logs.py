"""Job logging: every job writes its progress and any traceback to its ``log:`` file."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

from ouroboros import parallel
from ouroboros.gpus import gpu_slots


@contextlib.contextmanager
def job_logging(log_path, level: int = logging.INFO):
    """Send the ``ouroboros`` logger, warnings, stdout and stderr of a job to ``log_path``."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(True)
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                yield logging.getLogger("ouroboros")
        except BaseException:
            logging.getLogger("ouroboros").exception("job failed after %.1fs", time.perf_counter() - start)
            raise
        else:
            logging.getLogger("ouroboros").info("done in %.1fs", time.perf_counter() - start)
        finally:
            root.removeHandler(handler)


def usage_path(log_path) -> Path:
    """Where a job's own measurement of its run time and peak memory goes: beside its log."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name.removesuffix(".log") + ".usage.json")


def write_usage(log_path, seconds: float) -> None:
    """The job's wall time and exact peak resident memory (getrusage: this process and its children), which
    Snakemake's sampled ``benchmark:`` misses for short jobs."""
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    try:
        usage_path(log_path).write_text(json.dumps({"seconds": round(seconds, 3), "max_rss_mb": round(peak_kb / 1024, 1)}))
    except OSError:
        pass


#: failures a second attempt cannot fix: the same inputs fail the same way
PERMANENT = ("ConfigError", "IntermediateFileError", "TypeError", "KeyError")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def disk_full(exc: BaseException, fallback: str | Path = ".") -> Optional[str]:
    """One line naming the full disk when ``exc`` (or what caused it) is "no space left" or a quota; the
    disk of ``fallback`` (the job's output) when the error names no file."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            where = Path(e.filename or fallback).resolve()
            probe = where
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            mount = probe
            while not os.path.ismount(mount) and mount != mount.parent:
                mount = mount.parent
            try:
                free = shutil.disk_usage(probe).free / 1024 ** 2
                left = f", {free:.0f} MB free"
            except OSError:
                left = ""
            what = "quota exceeded" if e.errno == errno.EDQUOT else "no space left"
            return (f"disk full: {what} on {mount}{left} (writing {where}); free space there and rerun: "
                    "finished outputs are kept")
    return None


def _is_permanent(exc: BaseException) -> bool:
    return type(exc).__name__ in PERMANENT or (isinstance(exc, ValueError) and not isinstance(exc, OSError))


def limit_native_threads(threads: int) -> None:
    """Hold torch's CPU threads to the job's ``threads`` (Snakemake's ``script:`` jobs, unlike ``shell:``, do not
    set OMP_NUM_THREADS: each torch job would use every core, and ``--cores N`` running N of them side by side
    would oversubscribe the machine).  An OMP_NUM_THREADS the user set wins; torch is not imported here."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def run_job(snakemake, func, *args, **kwargs):
    """Run ``func`` with logging to the rule's first log file, holding a GPU slot per GPU the job
    declared (``resources: gpu``; see :mod:`ouroboros.gpus`).

    On failure the job's log holds the traceback and stderr gets a one-line summary pointing at it, so
    Snakemake's own output stays readable; a full disk is one line naming the disk.  A failure a retry
    cannot fix (a config or file problem: :data:`PERMANENT`) is remembered beside the log, and a retry of
    the same job (Snakemake's ``retries``) then stops at once with the same message instead of recomputing.
    """
    log_path = snakemake.log[0]
    marker = Path(f"{log_path}.permanent")
    attempt = int(getattr(snakemake, "attempt", 1) or 1)
    if attempt > 1 and marker.is_file():
        print(f"not retried (a retry cannot fix it): {marker.read_text().strip()}\n(full traceback in {log_path})",
              file=sys.stderr)
        sys.exit(1)
    marker.unlink(missing_ok=True)
    gpus = int(getattr(snakemake.resources, "gpu", 0) or 0)
    threads = int(getattr(snakemake, "threads", 1) or 1)
    parallel.set_threads(threads)
    limit_native_threads(threads)
    start = time.perf_counter()
    try:
        with job_logging(log_path), gpu_slots(gpus):
            result = func(*args, **kwargs)
        write_usage(log_path, time.perf_counter() - start)
        return result
    except Exception as exc:
        outputs = list(getattr(snakemake, "output", []) or [])
        full = disk_full(exc, outputs[0] if outputs else log_path)
        if full:
            print(full, file=sys.stderr)
            sys.exit(1)
        line = f"{type(exc).__name__}: {exc}"
        if _is_permanent(exc):
            try:
                marker.write_text(line + "\n")
            except OSError:
                pass
        print(f"{line}\n(full traceback in {log_path})", file=sys.stderr)
        sys.exit(1)


def when_nothing_to_do(message) -> None:
    """Print ``message()`` after Snakemake's "Nothing to be done" (its ``onsuccess`` does not run then), so a
    rerun with nothing left to do still says where the results are."""
    class _Hint(logging.Filter):
        def filter(self, record):
            if isinstance(record.msg, str) and record.msg.startswith("Nothing to be done"):
                record.msg = f"{record.msg}\n{message()}"
            return True

    logging.getLogger("snakemake.logging").addFilter(_Hint())
