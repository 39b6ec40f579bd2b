"""``accumulate``: D_t = real + S_0 + ... + S_{t-1}, growing by n per generation (Gerstgrasser et al. 2024)."""
from __future__ import annotations

from ouroboros.regimes.base import Regime


class Accumulate(Regime):
    kind = "accumulate"
    description = "real data and every earlier generation's synthetic data, kept (grows by n per generation)"
    pools = True

    def build(self, src):
        return src.pool
