"""``mix``: real and synthetic items in every training set.

By fraction: round(rho n) real items plus n - round(rho n) items of S_{t-1}
(Shumailov et al. 2024 kept 10%).  By count: ``n_real`` real plus
``n_synthetic`` synthetic items (a training set of n_real + n_synthetic items,
which may differ from generation 0's n; set both): the fresh-data loop of
Alemohammad et al. 2024 (n_r fresh real + n_s synthetic) and, with
``n_real: n`` and the real training set reused, the fixed real set plus
synthetic data of Bertrand et al. 2024.

The real items are a fresh random subset of the real training set each
generation (all of it when n_real = n), or, with ``fresh``, newly drawn real
data each generation.

``real_weight`` w weighs the two parts in the refit instead of by their counts: a weighted maximum
likelihood in which the real items together weigh w and the synthetic ones 1 - w (He, Xu and Cheng 2026,
"golden-ratio weighting": for a Gaussian mean with fresh real data and equal part sizes, the stationary error
is smallest at w = 1 / phi, about 0.618).  It needs a target whose fit reads sufficient statistics (each part
is summarised and scaled, :meth:`ouroboros.data.Summary.scaled`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ouroboros import data as D
from ouroboros.regimes.base import Regime
from ouroboros.settings import ConfigError, settings_schema
from ouroboros.targets.capabilities import stats_sufficient


class Mix(Regime):
    kind = "mix"
    description = ("real and synthetic items in each training set: a real fraction rho, or n_real real plus "
                   "n_synthetic synthetic (a random subset of the real set, or fresh real data)")
    settings_schema = settings_schema({
        "rho": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.1,
                "description": "real fraction of each training set (when n_real and n_synthetic are not set)"},
        "fresh": {"type": "boolean", "default": False,
                  "description": "draw fresh real data each generation instead of reusing the real training set"},
        "n_real": {"type": ["integer", "null"], "minimum": 0, "default": None,
                   "description": "real items per training set after generation 0 (set with n_synthetic; rho is "
                                  "then unused)"},
        "n_synthetic": {"type": ["integer", "null"], "minimum": 0, "default": None,
                        "description": "synthetic items per training set (set with n_real)"},
        "real_weight": {"type": ["number", "null"], "minimum": 0, "maximum": 1, "default": None,
                        "description": "weight of the real items, together, in a weighted refit (the synthetic ones "
                                       "weigh 1 - real_weight); null: every item weighs the same"},
    }, stage="fit")

    def __init__(self, **settings):
        super().__init__(**settings)
        nr, ns = self.settings["n_real"], self.settings["n_synthetic"]
        if (nr is None) != (ns is None):
            raise ConfigError(f"regime mix: set both n_real and n_synthetic, or neither (got n_real={nr}, "
                              f"n_synthetic={ns})")
        if nr is not None and nr + ns == 0:
            raise ConfigError("regime mix: n_real + n_synthetic must be positive")

    @property
    def rho(self) -> float:
        return float(self.settings["rho"])

    @property
    def fresh(self) -> bool:
        return bool(self.settings["fresh"])

    @property
    def by_count(self) -> bool:
        return self.settings["n_real"] is not None

    @property
    def real_weight(self):
        """The real items' weight in the refit, or None (weighted by their counts)."""
        w = self.settings["real_weight"]
        return None if w is None else float(w)

    @property
    def label(self) -> str:
        """``mix-rho0.1``, ``mix-rho0.1-fresh``, ``mix-nr100-ns900-fresh``, ``mix-nr100-ns100-fresh-w0.618``."""
        if self.by_count:
            core = f"mix-nr{self.settings['n_real']}-ns{self.settings['n_synthetic']}"
        else:
            core = f"mix-rho{self.rho:g}"
        return core + ("-fresh" if self.fresh else "") + ("" if self.real_weight is None else f"-w{self.real_weight:g}")

    def columns(self) -> dict:
        """rho, fresh and, by count, n_real, n_synthetic (rho is then the real fraction they make); real_weight
        where set."""
        weight = {} if self.real_weight is None else {"real_weight": self.real_weight}
        if not self.by_count:
            return {"rho": self.rho, "fresh": self.fresh, **weight}
        return {"rho": self.real_fraction(0), "fresh": self.fresh, "n_real": self.settings["n_real"],
                "n_synthetic": self.settings["n_synthetic"], **weight}

    def weights(self, n: int) -> tuple[float, float]:
        """The share of the refit's weight on the real part and on the synthetic part."""
        if self.real_weight is None:
            return super().weights(n)
        return self.real_weight, 1.0 - self.real_weight

    def n_real(self, n):
        return int(self.settings["n_real"]) if self.by_count else int(round(self.rho * n))

    def n_synthetic(self, n):
        return int(self.settings["n_synthetic"]) if self.by_count else n - self.n_real(n)

    def real_fraction(self, n) -> float:
        """n_real / (n_real + n_synthetic)."""
        total = self.n_real(n) + self.n_synthetic(n)
        return self.n_real(n) / total if total else 0.0

    def uses_real(self, t):
        reuses = self.settings["n_real"] > 0 if self.by_count else self.rho > 0
        return t == 0 or (not self.fresh and reuses)

    @property
    def fresh_real(self) -> bool:
        return self.fresh

    def check(self, n: int) -> Optional[str]:
        if self.real_weight is not None and (self.n_real(n) == 0 or self.n_synthetic(n) == 0):
            return (f"mix with real_weight weighs real against synthetic items, but its training sets hold "
                    f"{self.n_real(n)} real and {self.n_synthetic(n)} synthetic items; give both parts items")
        if self.by_count and not self.fresh and self.n_real(n) > n:
            return (f"mix with n_real={self.n_real(n)} reuses the real training set of n={n} items: n_real must "
                    "be at most n (or set fresh: true)")
        if not self.by_count and 0 < self.rho < 1 and self.n_real(n) in (0, n):
            kept = "no real item" if self.n_real(n) == 0 else "no synthetic item"
            return (f"mix with rho={self.rho:g} keeps round(rho x n) = round({self.rho * n:g}) = {self.n_real(n)} "
                    f"real items of n={n}: {kept}, so it would run as {'replace' if kept == 'no real item' else 'real data only'} "
                    "under another name; raise n or choose rho (or give n_real and n_synthetic)")
        return None

    def check_target(self, target) -> Optional[str]:
        if self.real_weight is not None and not stats_sufficient(target):
            return (f"real_weight needs a weighted refit, which target {target.name!r} does not have (it needs a "
                    "target whose fit reads sufficient statistics: gaussian, categorical, linreg)")
        return None

    def build(self, src):
        m = self.n_real(src.n)
        parts = []
        if m:
            parts.append(src.draw_real(src.rng, m) if self.fresh else D.subsample(src.real, m, src.rng))
        if self.n_synthetic(src.n):
            parts.append(src.previous)
        if self.real_weight is None:
            return D.concat(parts)
        real, synthetic = (src.statistics(p) for p in parts)
        total = self.n_real(src.n) + self.n_synthetic(src.n)
        w_real, w_syn = self.weights(src.n)

        def per_item(weight, part):  # each item's weight, so that the part weighs ``weight`` of ``total`` items
            return weight * total / np.where(part.count > 0, part.count, 1.0)

        return real.scaled(per_item(w_real, real)).merge(synthetic.scaled(per_item(w_syn, synthetic)))
