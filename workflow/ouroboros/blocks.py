"""Blocks of generations: how a long chain becomes a short chain of jobs."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ouroboros.paths import BlockFiles

BLOCK_DIR = re.compile(r"^gens(\d+)-(\d+)$")
BLOCK_FILES = BlockFiles.OUTPUTS


def plan_blocks(generations: int, size: int, existing: set[tuple[int, int]] = frozenset()) -> list[tuple[int, int]]:
    """Blocks (first, last) covering generations 0..G.

    From scratch, blocks are 0..size-1, size..2 size-1, ... and end at G.  A
    block that already exists and fits (say 6..6, the tail of an earlier run
    with G = 6) is kept and the plan continues after it, so asking for more
    generations only computes the new ones.
    """
    if generations < 0 or size < 1:
        raise ValueError("generations must be >= 0 and block size >= 1")
    blocks, start = [], 0
    while start <= generations:
        fits = [b for a, b in existing if a == start and b <= generations]
        end = max(fits) if fits else min(generations, start + size - 1)
        blocks.append((start, end))
        start = end + 1
    return blocks


def completed_blocks(chain_dir) -> set[tuple[int, int]]:
    """Blocks of a chain whose three outputs are all on disk."""
    found = set()
    try:
        entries = os.listdir(chain_dir)
    except FileNotFoundError:
        return found
    for name in entries:
        m = BLOCK_DIR.match(name)
        if m and all((Path(chain_dir) / name / f).is_file() for f in BLOCK_FILES):
            found.add((int(m.group(1)), int(m.group(2))))
    return found
