"""``threshold``: keep the candidates scoring at least a threshold; then top up with the best of the rest,
or keep fewer (the training set of that replicate is then smaller; the kept fraction reports it)."""
from __future__ import annotations

import numpy as np

from ouroboros.curation.base import OVERSAMPLE, Selector, best_first
from ouroboros.settings import settings_schema


class Threshold(Selector):
    kind = "threshold"
    description = "keep candidates scoring >= threshold (best first, at most m); top up or report the shortfall"
    settings_schema = settings_schema({
        "threshold": {"type": "number", "default": 0.0, "description": "the lowest score kept"},
        "fill": {"enum": ["top_up", "report"], "default": "top_up",
                 "description": "top_up: fill to m with the best candidates below the threshold; "
                                "report: keep only those above (smaller training sets)"},
        "oversample": OVERSAMPLE,
    }, stage="sample")

    def select(self, candidates, scores, m, rng, ctx):
        order = best_first(scores)[:, :m]
        passed = np.take_along_axis(scores, order, axis=1) >= self.settings["threshold"]
        if self.settings["fill"] == "top_up":
            passed = np.ones_like(passed)
        return order, passed
