"""File I/O for intermediates: atomic writes, loud failures, no pickle.

Arrays go to ``.npz`` (loaded with ``allow_pickle=False``), small metadata to
JSON.  A missing or truncated intermediate raises :class:`IntermediateFileError`
naming the file, instead of being read as garbage.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

# the folders the rules declare as directory() outputs: Snakemake sees such a folder, not the files in it,
# so a bad file inside one is recomputed by deleting the folder
from ouroboros.paths import DIRECTORY_OUTPUTS




def redo(path: str | os.PathLike) -> str:
    """What to delete so that the workflow recomputes ``path``: the outermost directory output holding it,
    or the file itself."""
    path = Path(path)
    for parent in reversed(path.parents):
        if parent.name in DIRECTORY_OUTPUTS:
            return f"delete the folder {parent} and rerun the workflow to recompute it"
    if path.name in DIRECTORY_OUTPUTS:
        return f"delete the folder {path} and rerun the workflow to recompute it"
    return f"delete {path} and rerun the workflow to recompute it"


class IntermediateFileError(RuntimeError):
    """An intermediate file is missing, truncated or not what it claims to be; with ``path``, the message
    ends with what to delete to recompute it."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(f"{message}; {redo(path)}" if path is not None else message)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _atomic_target(path: Path):
    """A temporary file beside ``path`` with the usual permissions (mkstemp makes them 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _MODE)
    os.close(fd)
    return Path(tmp)


def digest_file(path: str | os.PathLike) -> Path:
    """Where the sha256 of an intermediate ``.npz`` is recorded as it is written: a hidden file beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.sha256")


def save_npz(path: str | os.PathLike, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Write arrays to ``path`` atomically (temporary file, then rename); ``compressed``: zip-deflated
    (worth it for sparse arrays such as a categorical model's frequencies after categories are lost).  Its
    sha256 is recorded beside it (:func:`digest_file`), which :func:`load_npz` checks."""
    path = Path(path)
    digest_file(path).unlink(missing_ok=True)
    tmp = _atomic_target(path)
    try:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **{k: np.asarray(v) for k, v in arrays.items()})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    save_text(digest_file(path), f"{file_sha256(path)} {path.stat().st_size}\n")


def load_npz(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file into memory, checking it is whole and, where its sha256 was recorded
    as it was written, that it is the file written there (not another generation's, not damaged)."""
    path = Path(path)
    if not path.is_file():
        raise IntermediateFileError(f"intermediate file is missing: {path}", path)
    recorded = digest_file(path)
    if recorded.is_file() and recorded.read_text().split()[:1] != [file_sha256(path)]:
        raise IntermediateFileError(f"{path} is not the file its job wrote (its sha256 differs from the one recorded "
                                    f"beside it, {recorded.name}): damaged or replaced; delete it and rerun", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise IntermediateFileError(f"intermediate file is truncated or corrupt: {path} ({exc})", path) from exc
    missing = [k for k in required if k not in out]
    if missing:
        raise IntermediateFileError(f"{path} lacks the arrays {missing}: it was written by something else", path)
    return out


def save_json(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise IntermediateFileError(f"intermediate file is missing: {path}", path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntermediateFileError(f"intermediate file is truncated or corrupt: {path} ({exc})", path) from exc


def save_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def digest(arrays: Mapping[str, np.ndarray]) -> str:
    """A short content hash of named arrays (order-independent in the names)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 4 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_record(directory: str | os.PathLike, exclude: tuple[str, ...] = ()) -> dict[str, dict]:
    """What a model folder's ``target.json`` records of the files its job wrote: ``files`` (sha256, checked as
    they are read) and ``sizes`` (bytes, compared as each run starts: :func:`damaged`).  The digests
    :func:`save_npz` left in the folder are removed: this record replaces them (and MLflow logs nothing hidden)."""
    root = Path(directory)
    for p in root.rglob(".*.sha256"):
        if _is_digest_file(p):
            p.unlink()
    names = _recorded_names(root, exclude)
    return {"files": {name: file_sha256(root / name) for name in names},
            "sizes": {name: (root / name).stat().st_size for name in names}}


def _recorded_names(root: Path, exclude: tuple[str, ...] = ()) -> list[str]:
    return [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() not in exclude and not _is_digest_file(p)]


def damaged(root: str | os.PathLike, limit: int = 5) -> list[str]:
    """Intermediates under ``root`` whose size is not the one recorded as their job wrote them (an ``.npz``'s
    digest file, a model folder's ``target.json``), one line each with what to delete, at most ``limit``: a
    file cut short after its job (a full disk, a copy interrupted) is found as the next run starts, not when a
    later extension reads it.  Sizes only (a stat per file); :func:`load_npz` and the model's load compare the
    sha256 when they read."""
    out = []
    root = Path(root)
    for record in root.rglob(".*.npz.sha256"):
        path = _digested(record)
        try:
            fields = record.read_text().split()
            size = path.stat().st_size
        except OSError:
            continue  # the file itself is gone: Snakemake reruns its job
        if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) != size:
            out.append(f"{path} has {size:,} bytes, its job wrote {int(fields[1]):,}: {redo(path)}")
    for record in root.rglob("target.json"):
        try:
            sizes = json.loads(record.read_text(encoding="utf-8")).get("sizes") or {}
        except (OSError, ValueError, AttributeError):
            continue  # read (and refused by name) by the job that loads it
        pruned = record.parent.with_name(record.parent.name + ".pruned.json").is_file()  # weights removed by keep
        for name, wrote in sizes.items():
            path = record.parent / name
            size = path.stat().st_size if path.is_file() else None
            if size != wrote and not (size is None and pruned):
                found = "is missing" if size is None else f"has {size:,} bytes"
                out.append(f"{path} {found}, its job wrote {wrote:,}: {redo(path)}")
    return sorted(out)[:limit]


def _digested(record: Path) -> Path:
    """The file a digest file ``.NAME.sha256`` records."""
    return record.with_name(record.name[1:-len(".sha256")])


def _is_digest_file(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".sha256") and _digested(path).exists()


def check_digests(directory: str | os.PathLike, recorded: Mapping[str, str], record: str) -> None:
    """Every file ``recorded`` (as :func:`folder_record` wrote it in ``record``) holds the bytes it was written
    with: a file swapped for another (a valid model of another generation) or damaged is refused by name."""
    root = Path(directory)
    for name, sha in recorded.items():
        path = root / name
        if not path.is_file():
            raise IntermediateFileError(f"intermediate file is missing: {path} ({record} lists it)", root)
        if file_sha256(path) != sha:
            raise IntermediateFileError(f"{path} is not the file its job wrote (its sha256 differs from the one "
                                        f"{record} recorded): a swapped or damaged file", root)


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@functools.lru_cache(maxsize=None)
def git_commit(repo: str | os.PathLike) -> str:
    """The repository's commit (looked up once per process; "unknown" outside a git checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
