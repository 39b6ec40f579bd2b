"""Job logging: every job writes its progress and any traceback to its ``log:`` file."""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path


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


def run_job(snakemake, func, *args, **kwargs):
    """Run ``func`` with logging to the rule's first log file, holding a GPU slot per GPU the job
    declared (``resources: gpu``; see :mod:`ouroboros.gpus`).

    On failure the job's log holds the traceback and stderr gets a one-line
    summary pointing at it, so Snakemake's own output stays readable.
    """
    from ouroboros.gpus import gpu_slots

    log_path = snakemake.log[0]
    gpus = int(getattr(snakemake.resources, "gpu", 0) or 0)
    try:
        with job_logging(log_path), gpu_slots(gpus):
            return func(*args, **kwargs)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}\n(full traceback in {log_path})", file=sys.stderr)
        sys.exit(1)
