"""``mix``: a real fraction rho of every training set (Shumailov et al. 2024 kept 10%).

round(rho n) real items plus n - round(rho n) items of S_{t-1}.  The real items
are a fresh random subset of the real training set each generation, or, with
``fresh``, newly drawn real data each generation (the fresh-data loop of
Alemohammad et al. 2024).
"""
from __future__ import annotations

from ouroboros import data as D
from ouroboros.regimes.base import Regime
from ouroboros.settings import settings_schema


class Mix(Regime):
    kind = "mix"
    description = "a real fraction rho of each training set (a random subset of the real set, or fresh real data)"
    settings_schema = settings_schema({
        "rho": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.1,
                "description": "real fraction of each training set"},
        "fresh": {"type": "boolean", "default": False,
                  "description": "draw fresh real data each generation instead of reusing the real training set"},
    })

    @property
    def rho(self) -> float:
        return float(self.settings["rho"])

    @property
    def fresh(self) -> bool:
        return bool(self.settings["fresh"])

    @property
    def label(self) -> str:
        """``mix-rho0.1``, ``mix-rho0.1-fresh``."""
        return f"mix-rho{self.rho:g}" + ("-fresh" if self.fresh else "")

    def n_real(self, n):
        return int(round(self.rho * n))

    def uses_real(self, t):
        return t == 0 or (not self.fresh and self.rho > 0)

    def build(self, t, n, real, previous, pool, rng, draw_real):
        m = self.n_real(n)
        parts = []
        if m:
            parts.append(draw_real(rng, m) if self.fresh else D.subsample(real, m, rng))
        if self.n_synthetic(n):
            parts.append(previous)
        return D.concat(parts)
