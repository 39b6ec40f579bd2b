"""``accumulate-subsample``: n items drawn without replacement from real + S_0 + ... + S_{t-1} (Kazdan et al. 2024)."""
from __future__ import annotations

from ouroboros import data as D
from ouroboros.regimes.base import Regime


class AccumulateSubsample(Regime):
    kind = "accumulate-subsample"
    description = "n items drawn without replacement from the accumulated pool each generation"
    pools = True
    needs_points = True

    def train_size(self, n, t):
        return n

    def build(self, src):
        return D.subsample(src.pool, src.n, src.rng)
