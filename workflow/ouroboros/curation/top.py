"""``top``: truncation selection: keep the best-scoring fraction q of the candidates."""
from __future__ import annotations

import math

import numpy as np

from ouroboros.curation.base import Selector, best_first
from ouroboros.settings import settings_schema


class Top(Selector):
    kind = "top"
    description = "truncation selection: draw m/q candidates, keep the m best-scoring"
    settings_schema = settings_schema({
        "q": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5,
              "description": "fraction of the candidates kept (the model draws ceil(m / q) candidates)"},
    }, stage="sample")

    def n_candidates(self, m):
        return int(math.ceil(m / self.settings["q"] - 1e-9))

    def select(self, candidates, scores, m, rng, ctx):
        idx = best_first(scores)[:, :m]
        return np.sort(idx, axis=1), np.ones(idx.shape, bool)
