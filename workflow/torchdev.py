"""Device choice for torch targets (imported only by jobs that use torch).

``auto`` means CUDA when torch sees a CUDA device, else the CPU; ``cuda``
without a CUDA device is an error naming the problem, never a silent fallback.
"""
from __future__ import annotations


def cuda_available() -> bool:
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


def device_label(device: str) -> str:
    """What runs a job: the GPU's name, or ``cpu``."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return "cpu"
