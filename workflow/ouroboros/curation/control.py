"""``random``: the control: draw the same oversampled candidates and keep a uniformly random m of them."""
from __future__ import annotations

import numpy as np

from ouroboros.curation.base import OVERSAMPLE, Selector
from ouroboros.settings import settings_schema


class RandomSelector(Selector):
    kind = "random"
    description = "keep a uniformly random m of the oversampled candidates (no selection: the control)"
    needs_scores = False
    settings_schema = settings_schema({
        "oversample": OVERSAMPLE,
    }, stage="sample")

    def select(self, candidates, scores, m, rng, ctx):
        r, n = np.shape(candidates)[:2]
        idx = np.sort(np.argsort(rng.random((r, n)), axis=1)[:, :m], axis=1)
        return idx, np.ones(idx.shape, bool)
