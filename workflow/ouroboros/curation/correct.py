"""``correct``: Gillman et al.'s self-correction (ICML 2024), a correction applied to every synthetic item before
it is trained on.

Each candidate is moved towards the data manifold by the target's correction (``Target.correct``; the
diffusion target: a share ``gamma`` of the way to the nearest of ``k`` real cluster centres, per class in the
judge's feature space for images), then the first m are kept: nothing is dropped, so the regime's synthetic
share is unchanged.  gamma = 0 is the uncorrected loop; gamma = 1 replaces each item by its centre.  With a
scorer, the score metrics are of the corrected items.
"""
from __future__ import annotations

import numpy as np

from ouroboros.curation.base import Selector
from ouroboros.settings import settings_schema
from ouroboros.targets.capabilities import curation_hooks


class Correct(Selector):
    kind = "correct"
    description = "move each synthetic item towards the nearest real cluster centre by a share gamma, keep them all"
    reads_reference = True
    needs_scores = False
    settings_schema = settings_schema({
        "gamma": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                  "description": "correction strength: the share of the way to the nearest real cluster centre"},
        "k": {"type": "integer", "minimum": 1, "default": 10,
              "description": "real cluster centres (per class, for images)"},
    }, stage="sample")

    def n_candidates(self, m: int) -> int:
        return m

    def check(self, target):
        if "correct" not in curation_hooks(target):
            return f"target {target.name} has no correction for the selector 'correct'"
        return None

    def transform(self, candidates, ctx):
        return ctx.target.correct(candidates, self.settings, ctx.reference)

    def select(self, candidates, scores, m, rng, ctx):
        r, n = np.shape(candidates)[:2]
        idx = np.broadcast_to(np.arange(min(m, n)), (r, min(m, n)))
        return idx.copy(), np.ones(idx.shape, bool)
