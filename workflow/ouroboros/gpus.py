"""GPU placement for concurrent jobs on one machine.

Snakemake counts GPUs (``resources: gpu=1`` on a job, ``--resources gpu=N`` for
the run) but assigns no device ids.  Each job that declares GPUs takes free
*slots* here: one lock file per visible GPU in a node-local folder, held with
``fcntl.flock`` for the job's lifetime, and exports
``CUDA_VISIBLE_DEVICES`` to the chosen ids before torch initialises CUDA, so
concurrent jobs land on different GPUs.  A lock dies with its process, so a
killed job frees its GPU.

The visible GPUs are ``CUDA_VISIBLE_DEVICES`` when it is set (SLURM sets it to
a job's allocation; an empty value means none), else the GPUs ``nvidia-smi -L``
lists.  :func:`query_gpu_ids` is the only place that asks the machine.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

log = logging.getLogger("ouroboros")


class GPUError(RuntimeError):
    """A job asked for more GPUs than the machine shows."""


def query_gpu_ids() -> list[str]:
    """GPU indices from ``nvidia-smi -L`` (empty when there is no NVIDIA driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def visible_gpus(environ: Optional[dict] = None) -> list[str]:
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    return query_gpu_ids()


def slot_dir(environ: Optional[dict] = None) -> Path:
    """Node-local lock folder (``OUROBOROS_GPU_LOCKS`` overrides it).

    Inside a SLURM job the folder is the job's own: SLURM already gave the job its GPUs (and may number
    them from 0 in every job), so slots are only shared out among the Snakemake jobs of that SLURM job."""
    env = os.environ if environ is None else environ
    base = Path(env.get("OUROBOROS_GPU_LOCKS") or Path(tempfile.gettempdir()) / f"ouroboros-gpus-{os.getuid()}")
    job = env.get("SLURM_JOB_ID")
    return base / f"slurm-job{job}" if job else base


@contextlib.contextmanager
def gpu_slots(count: int, wait_s: float = 3600.0, poll_s: float = 0.5,
              environ: Optional[dict] = None) -> Iterator[list[str]]:
    """Hold ``count`` free GPUs for the body; ``CUDA_VISIBLE_DEVICES`` names exactly them meanwhile.

    ``count`` 0 does nothing.  Waits (up to ``wait_s``) while other jobs hold every GPU, which only
    happens when more GPU jobs run than ``--resources gpu=N`` should allow.
    """
    env = os.environ if environ is None else environ
    if count <= 0:
        yield []
        return
    ids = visible_gpus(env)
    if count > len(ids):
        raise GPUError(f"the job needs {count} GPU(s) but this machine shows {len(ids)} "
                       f"({'CUDA_VISIBLE_DEVICES=' + env['CUDA_VISIBLE_DEVICES'] if 'CUDA_VISIBLE_DEVICES' in env else 'nvidia-smi -L'}); "
                       "set the target's device: cpu, or run where GPUs are")
    folder = slot_dir(env)
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[str, int]] = []
    deadline = time.monotonic() + wait_s
    try:
        while len(held) < count:
            for gpu in ids:
                if len(held) == count or any(g == gpu for g, _ in held):
                    continue
                fd = os.open(folder / f"gpu{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                held.append((gpu, fd))
            if len(held) < count:
                if time.monotonic() > deadline:
                    raise GPUError(f"no free GPU slot among {ids} after {wait_s:.0f}s (lock files in {folder})")
                time.sleep(poll_s)
        chosen = [g for g, _ in held]
        previous = env.get("CUDA_VISIBLE_DEVICES")
        env["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
        log.info("GPU slot(s) %s of %s (CUDA_VISIBLE_DEVICES=%s)", chosen, ids, env["CUDA_VISIBLE_DEVICES"])
        try:
            yield chosen
        finally:
            if previous is None:
                env.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                env["CUDA_VISIBLE_DEVICES"] = previous
    finally:
        for _, fd in held:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
