"""``replace``: the fully synthetic loop, D_t = S_{t-1} (Shumailov et al. 2024)."""
from __future__ import annotations

from ouroboros.regimes.base import Regime


class Replace(Regime):
    kind = "replace"
    description = "the fully synthetic loop: generation t trains on S_{t-1} only"

    def build(self, src):
        return src.previous
