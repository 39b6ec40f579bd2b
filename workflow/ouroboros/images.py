"""Real image data sets: scikit-learn's digits (ships offline), MNIST and Fashion-MNIST.

Images come back as float32 arrays (N, side*side) in [0, 1] with integer labels.
MNIST-style data are read from the original IDX ``.gz`` files in ``root``
(either directly in it or in ``root/MNIST/raw``); a missing file is a
:class:`DataError` naming the folder and the expected file names.  Where no
local copy exists, ``download: true`` fetches through ``torchvision.datasets``.
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

IDX = {
    "mnist": {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")},
}
IDX["fashion-mnist"] = IDX["mnist"]
TORCHVISION = {"mnist": ("MNIST", "MNIST"), "fashion-mnist": ("FashionMNIST", "FashionMNIST")}


class DataError(RuntimeError):
    """A data set cannot be loaded; the message says what is missing and where."""


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    magic = int.from_bytes(raw[:4], "big")
    dims = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def _find(root: Path, name: str) -> Path | None:
    for folder in (root, root / "MNIST" / "raw", root / "FashionMNIST" / "raw", root / "raw"):
        if (folder / name).is_file():
            return folder / name
    return None


@lru_cache(maxsize=8)
def load(name: str, root: str = "", split: str = "test", download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, side*side) float32 in [0, 1], labels (N,) int64)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    if name not in IDX:
        raise DataError(f"unknown data set {name!r}; available: digits, {', '.join(IDX)}")
    if split not in IDX[name]:
        raise DataError(f"unknown split {split!r} of {name}; available: {', '.join(IDX[name])}")
    folder = Path(root).expanduser()
    images_name, labels_name = IDX[name][split]
    images, labels = _find(folder, images_name), _find(folder, labels_name)
    if images is None or labels is None:
        if download:
            return _download(name, folder, split)
        raise DataError(f"{name} {split} split not found in {folder.resolve()}: expected {images_name} and "
                        f"{labels_name} there (or in MNIST/raw below it); set download: true to fetch it")
    x = read_idx(images).reshape(-1, 28 * 28).astype(np.float32) / 255.0
    y = read_idx(labels).astype(np.int64)
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    return x, y


def _download(name: str, folder: Path, split: str):
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[name][0])
    ds = cls(str(folder), train=(split == "train"), download=True)
    return (ds.data.numpy().reshape(len(ds), -1).astype(np.float32) / 255.0, ds.targets.numpy().astype(np.int64))


def split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    """A fixed train/test split (stratification is not needed at these sizes)."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def write_grid(samples, side: int, directory) -> None:
    """A grid of a generation's first 64 images (samples (1, N, side*side) in [0, 1]) as ``grid.png`` in
    ``directory`` (torchvision.utils.save_image; torch is imported here only)."""
    x = np.asarray(samples)[0][:64]
    if len(x):
        import torch
        from torchvision.utils import save_image

        save_image(torch.as_tensor(x).reshape(-1, 1, side, side), str(Path(directory) / "grid.png"), nrow=8, padding=1)


def grid_files(samples_dir) -> list[Path]:
    """The grid :func:`write_grid` wrote into a samples folder, if any."""
    grid = Path(samples_dir) / "grid.png"
    return [grid] if grid.is_file() else []
