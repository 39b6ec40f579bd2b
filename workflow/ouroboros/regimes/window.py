"""``window``: the real training set plus the last k generations' synthetic data.

D_t = real + S_{t-k} + ... + S_{t-1} (fewer while t < k): a sliding window of synthetic data on a fixed real
anchor.  k = 1 is ``replace`` with the real data kept (``mix`` with ``n_real: n, n_synthetic: n``);
k >= G keeps everything, as ``accumulate``.
"""
from __future__ import annotations

from ouroboros import data as D
from ouroboros.regimes.base import Regime
from ouroboros.settings import settings_schema


class Window(Regime):
    kind = "window"
    description = "the real data plus the last k generations' synthetic data (n items each)"
    settings_schema = settings_schema({
        "k": {"type": "integer", "minimum": 1, "default": 3,
              "description": "how many of the latest generations' synthetic data each training set keeps"},
    }, stage="fit")

    @property
    def label(self) -> str:
        return f"window-k{self.settings['k']}"

    def n_real(self, n):
        return n

    def n_synthetic(self, n):
        return n

    def sources(self, t):
        return list(range(max(0, t - self.settings["k"]), t))

    def uses_real(self, t):
        return True

    def build(self, src):
        return D.concat([src.real, src.joined()])
