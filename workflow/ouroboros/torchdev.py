"""Device choice for torch targets (imported only by jobs that use torch).

``auto`` means CUDA when torch sees a CUDA device, else the CPU; ``cuda``
without a CUDA device is an error naming the problem, never a silent fallback.
"""
from __future__ import annotations

from pathlib import Path

from ouroboros.io import IntermediateFileError


#: what a machine with a GPU torch can use shows: NVIDIA's driver (and device files), ROCm's, WSL's
GPU_DEVICE_FILES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def cuda_available() -> bool:
    """Whether torch sees a CUDA (or ROCm) device; without any GPU driver on the machine the answer is known
    without importing torch (0.8 GB and over a second, in every dry run of a torch study)."""
    if not any(Path(f).exists() for f in GPU_DEVICE_FILES):
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise RuntimeError("device: cuda was asked for but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; allowed: auto, cpu, cuda")
    return device


def gpus_for(device: str) -> int:
    """GPUs a job declares (``resources: gpu``) for a target's ``device`` setting.

    ``cuda`` always asks for one, wherever Snakemake itself runs (a cluster login node may have none;
    the job fails on a node without CUDA, naming the problem); ``auto`` asks for one when this machine
    shows a CUDA device; ``cpu`` never does."""
    if device == "cpu":
        return 0
    if device == "cuda":
        return 1
    return 1 if resolve_device(device) == "cuda" else 0


def device_label(device: str) -> str:
    """What runs a job: the GPU's name, or ``cpu``."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return "cpu"


def save_state_dict(module, path) -> None:
    """``torch.save`` of the module's state dict (tensors only), written atomically."""
    save_tensors(module.state_dict(), path)


def save_tensors(state: dict, path) -> None:
    """``torch.save`` of a mapping of tensors, written atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state_dict(path) -> dict:
    """A state dict saved by :func:`save_state_dict`, loaded with ``weights_only=True`` (no unpickling of code);
    a missing, truncated or corrupt file is an :class:`~ouroboros.io.IntermediateFileError` naming it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise IntermediateFileError(f"intermediate file is missing: {path}", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise IntermediateFileError(f"intermediate file is truncated or corrupt: {path} ({exc})", path) from exc


def load_weights(net, path, name: str):
    """``net`` with the state dict saved at ``path`` (weights saved in bf16/fp16 cast back to the network's dtypes),
    in eval mode; a state dict that does not fit the network is an
    :class:`~ouroboros.io.IntermediateFileError` naming the file and the ``target.json`` describing it."""
    path = Path(path)
    state = load_state_dict(path)
    own = net.state_dict()
    state = {k: (v.to(own[k].dtype) if k in own and v.is_floating_point() else v) for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise IntermediateFileError(f"{path} does not fit the {name} model described by {path.parent / 'target.json'} "
                                    f"({str(exc).splitlines()[0]})", path.parent) from exc
    return net.eval()


def autocast(device: str, amp: bool):
    """bf16 autocast on a GPU when ``amp`` (disabled on a CPU)."""
    import torch

    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bool(amp) and str(device).startswith("cuda"))
