"""Reading a finished study back: any generation's fitted model, from the files the workflow wrote.

>>> import numpy as np, ouroboros
>>> model = ouroboros.load_generation("default", "gaussian", "replace", seed=0, generation=100)
>>> x = model.sample(1000, 1.0, np.random.default_rng(0))      # (replicates, 1000, d)

Works for both layouts (a folder per generation, or blocks of generations stacked in ``models.npz``) and
needs neither the config nor MLflow.
"""
from __future__ import annotations

import re
from pathlib import Path

from ouroboros import io, paths
from ouroboros.chain import unstack_models
from ouroboros.targets import make_target
from ouroboros.targets.base import Target


def load_generation(study: str, experiment: str, regime: str, seed: int, generation: int, root: str | Path = "."):
    """The fitted model of one generation of one chain (a :class:`~ouroboros.targets.base.Target`, all
    replicates); ``root`` is the folder Snakemake ran in (the one holding ``results/``).  Its ``sample``
    draws items (points, counts' categories), also where the chain drew sufficient statistics."""
    model = _load_generation(study, experiment, regime, seed, generation, root)
    return model.drawing_points()


def _load_generation(study, experiment, regime, seed, generation, root):
    root = Path(root)
    generation = int(generation)
    model = root / paths.generation(study, experiment, regime, seed, generation).model
    if model.is_dir():
        return Target.load(model)
    chain = root / paths.chain_dir(study, experiment, regime, seed)
    if not chain.is_dir():
        found = root / paths.results(study)
        raise FileNotFoundError(
            f"no chain {experiment}/{regime}/seed{seed} in {found}"
            + (f" (experiments there: {', '.join(sorted(p.name for p in found.iterdir() if p.is_dir()))})"
               if found.is_dir() else " (no such study folder)"))
    for block in sorted(chain.iterdir()):
        m = re.fullmatch(r"gens(\d+)-(\d+)", block.name)
        files = paths.BlockFiles(str(block))
        if m and int(m.group(1)) <= generation <= int(m.group(2)) and Path(files.models).is_file():
            if not Path(files.target).is_file():
                raise io.IntermediateFileError(f"{block} has no target.json (written by an older version)",
                                               Path(files.models))
            meta = io.load_json(files.target)
            template = make_target(meta["target"], meta["params"])
            for g, model in unstack_models(io.load_npz(files.models, ("generation",)), template):
                if g == generation:
                    return model
    raise FileNotFoundError(f"generation {generation} of {experiment}/{regime}/seed{seed} is not in {chain} "
                            "(not computed yet, or outside the study's generations)")
