"""``choice``: Bradley-Terry / Plackett-Luce choice (Ferbach et al. 2024): every kept item is chosen among
K fresh candidates with probability proportional to exp(gamma * score)."""
from __future__ import annotations

import numpy as np

from ouroboros.curation.base import Selector
from ouroboros.settings import settings_schema


class Choice(Selector):
    kind = "choice"
    description = "each kept item is chosen among K candidates with probability proportional to exp(gamma score)"
    settings_schema = settings_schema({
        "K": {"type": "integer", "minimum": 2, "default": 4, "description": "candidates per choice"},
        "gamma": {"type": "number", "minimum": 0, "default": 1.0,
                  "description": "inverse temperature of the choice (0: uniform, large: the best of K)"},
    }, stage="sample")

    def n_candidates(self, m):
        return m * self.settings["K"]

    def select(self, candidates, scores, m, rng, ctx):
        K, gamma = self.settings["K"], self.settings["gamma"]
        r = scores.shape[0]
        logits = gamma * scores[:, : m * K].reshape(r, m, K)
        logits = logits - logits.max(axis=2, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=2, keepdims=True)
        u = rng.random((r, m, 1))
        pick = np.minimum((u > np.cumsum(p, axis=2)).sum(axis=2), K - 1)  # (R, m)
        idx = np.arange(m)[None, :] * K + pick
        return idx, np.ones(idx.shape, bool)
