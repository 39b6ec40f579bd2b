"""Linear regression refit by least squares on labels made by the previous model.

The setting of Gerstgrasser et al. 2024 (arXiv 2404.01413) and Dohmatob, Feng and Kempe 2024 (arXiv
2402.07712): rows (x, y) with x ~ N(0, I_d) and y = x . w* + eps, eps ~ N(0, sigma^2); items are shaped
(R, T, d + 1) (y last).  Generation 0 fits the T real rows; every later generation fits rows whose labels the
previous model made, y = x . w_hat + sqrt(lam) eps (the sampling bias lam scales the label noise), on

* ``design: fixed``: the same inputs as the real data (a fixed design; the chain only relabels it), or
* ``design: fresh``: new inputs x ~ N(0, I_d) each generation.

The fixed design is a function of ``design_seed`` and the replicate index (seeds of a study differ in their
noise, not their designs; the R replicates each have their own design).  The fit is ordinary least squares,
or ridge with ``ridge`` > 0: w_hat = (X^T X + ridge I)^-1 X^T y.  It depends on the data only through
X^T X, X^T y (:class:`~ouroboros.data.Gram`), so the accumulate regimes pool those, not the rows.
w* has norm ``w_norm`` along (1, ..., 1).

Strong model collapse (Dohmatob, Feng, Subramonian and Kempe, ICLR 2025): with ``synthetic_share`` p > 0 the
real data are a mixture: round(p n) of the n rows are labelled by a shifted generator w2* = w* + Delta
(``shift`` = ||Delta||, Delta orthogonal to w*), the others by w*; every metric still scores against w*.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ouroboros.data import Data, Gram
from ouroboros.regimes import Regime
from ouroboros.settings import settings_schema
from ouroboros.targets.base import Target
from ouroboros.targets.capabilities import ClosedForm, SufficientStatistics


@functools.lru_cache(maxsize=4)
def _fixed_design(seed: int, replicates: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 20240401])
    x = rng.standard_normal((n, replicates, d)).transpose(1, 0, 2)
    x.flags.writeable = False
    return x


class LinRegTarget(SufficientStatistics, ClosedForm, Target):
    name = "linreg"
    headline = "test_mse"
    test_settings = ({"params": {"d": 3}, "n": 12, "replicates": 5},)
    default_block = 1000
    params_schema = settings_schema({
        "d": {"stage": "data", "type": "integer", "minimum": 1, "default": 10, "description": "number of features"},
        "noise_var": {"stage": "data", "type": "number", "exclusiveMinimum": 0, "default": 1.0,
                      "description": "label noise variance sigma^2 (real labels and every model's labels)"},
        "design": {"stage": "data", "enum": ["fixed", "fresh"], "default": "fixed",
                   "description": "relabel the real inputs every generation, or draw new inputs each generation"},
        "ridge": {"stage": "fit", "type": "number", "minimum": 0, "default": 0.0,
                  "description": "ridge penalty of the refit (0: ordinary least squares)"},
        "w_norm": {"stage": "data", "type": "number", "minimum": 0, "default": 1.0, "description": "norm of the true weights w*"},
        "synthetic_share": {"stage": "data", "type": "number", "minimum": 0, "maximum": 1, "default": 0.0,
                            "description": "share p of the real data's rows labelled by a shifted generator "
                                           "w* + Delta (strong model collapse); 0: all by w*"},
        "shift": {"stage": "data", "type": "number", "minimum": 0, "default": 1.0,
                  "description": "||Delta||, the shifted generator's distance from w* (orthogonal to w*)"},
        "design_seed": {"stage": "data", "type": "integer", "minimum": 0, "default": 0,
                        "description": "seed of the fixed design (inputs per replicate)"},
    })
    default_metric_data = "model"
    metric_data = {"test_mse": "real"}
    metrics = {
        "w_error_mean": "||w_hat - w*||^2, mean over replicates",
        "w_error_median": "||w_hat - w*||^2, median over replicates",
        "test_mse": "mean squared error on 1000 held-out inputs against noise-free labels, mean over replicates",
        "w_drift": "||w_hat_t - w_hat_0||^2, mean over replicates",
    }

    def __init__(self, d=10, noise_var=1.0, design="fixed", ridge=0.0, w_norm=1.0, synthetic_share=0.0, shift=1.0,
                 design_seed=0):
        super().__init__(d=d, noise_var=noise_var, design=design, ridge=ridge, w_norm=w_norm,
                         synthetic_share=synthetic_share, shift=shift, design_seed=design_seed)
        self.d, self.sigma = int(d), float(np.sqrt(noise_var))
        self.ridge, self.design = float(ridge), design
        self.w_star = np.full(self.d, float(w_norm) / np.sqrt(self.d))
        self.share = float(synthetic_share)
        delta = np.zeros(self.d)
        if self.d == 1:
            delta[0] = 1.0
        else:  # orthogonal to w* (along the ones): (1, -1, 0, ...) / sqrt(2)
            delta[:2] = [1.0, -1.0]
        self.delta = float(shift) * delta / np.linalg.norm(delta)

    def shifted_rows(self, n: int) -> int:
        """Rows of n real ones that the shifted generator labels: round(p n)."""
        return int(round(self.share * n))

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        if self.ridge == 0 and not regime.pools:
            rows = min(n, regime.n_real(n) + regime.n_synthetic(n))
            if rows < self.d:
                return f"least squares on {rows} rows cannot fit d={self.d} weights; use n >= d or set ridge > 0"
        return None

    # -- data --------------------------------------------------------------------
    def fixed_design(self, replicates: int, n: int) -> np.ndarray:
        """Inputs (R, n, d) of the fixed design; the first m rows of a longer design are the m-row design."""
        return _fixed_design(int(self.params["design_seed"]), replicates, n, self.d)

    def _inputs(self, rng, n, replicates):
        if self.design == "fixed":
            return self.fixed_design(replicates, n)
        return rng.standard_normal((replicates, n, self.d))

    def _rows(self, x: np.ndarray, w: np.ndarray, noise_sd: float, rng) -> np.ndarray:
        y = np.einsum("rnd,rd->rn", x, w) + noise_sd * rng.standard_normal(x.shape[:2])
        return np.concatenate([x, y[..., None]], axis=2)

    def item_bytes(self):
        return 8 * (self.d + 1)

    def model_bytes(self):
        return 8 * (self.d + (self.d + 1) ** 2)

    def real_data(self, rng, n, replicates):
        train = self.draw_real(rng, n, replicates)
        x_test = rng.standard_normal((1, 1000, self.d))
        y_test = x_test @ self.w_star
        return {"train": train, "test": np.concatenate([x_test, y_test[..., None]], axis=2)}

    def draw_real(self, rng, m, replicates):
        w = np.broadcast_to(self.w_star, (replicates, self.d))
        rows = self._rows(self._inputs(rng, m, replicates), w, self.sigma, rng)
        k = self.shifted_rows(m)
        if k:  # the first k rows labelled by w* + Delta (same inputs, same noise)
            rows = rows.copy()
            rows[:, :k, -1] += rows[:, :k, :-1] @ self.delta
        return rows

    def summarize(self, points):
        return Gram.from_points(points)

    # -- model -------------------------------------------------------------------
    def fit(self, data: Data, rng=None) -> "LinRegTarget":
        g = data if isinstance(data, Gram) else Gram.from_points(data)
        a = g.xx + self.ridge * np.eye(self.d)
        try:
            self.w_ = np.linalg.solve(a, g.xy[..., None])[..., 0]
        except np.linalg.LinAlgError:
            self.w_ = np.einsum("rij,rj->ri", np.linalg.pinv(a), g.xy)
        return self

    def sample(self, n, lam, rng):
        r = self.w_.shape[0]
        return self._rows(self._inputs(rng, n, r), self.w_, np.sqrt(lam) * self.sigma, rng)

    def get_state(self):
        return {"w": self.w_}

    def set_state(self, state):
        self.w_ = np.asarray(state["w"], float)
        return self

    # -- metrics -----------------------------------------------------------------
    def evaluate(self, samples, real, reference, gen0):
        err = self.w_ - self.w_star
        sq = np.sum(err * err, axis=1)
        x_test = np.asarray(real["test"], float)[0, :, :-1]
        test_mse = np.mean((err @ x_test.T) ** 2, axis=1)
        drift = np.sum((self.w_ - gen0.w_) ** 2, axis=1)
        return {"w_error_mean": float(sq.mean()), "w_error_median": float(np.median(sq)),
                "test_mse": float(test_mse.mean()), "w_drift": float(drift.mean())}

    # -- theory ------------------------------------------------------------------
    def closed_form(self, metric, generations, regime, n, lam, curation=None):
        """E||w_hat_t - w*||^2 for ordinary least squares (ridge 0), T = n > d + 1 rows, without curation.

        Every generation adds the least-squares fit of its own label noise, eta_j with covariance
        lam_j sigma^2 (X^T X)^-1 (lam_0 = 1: the real labels), and E tr (X^T X)^-1 = d / (T - d - 1) for a
        Gaussian design, so with c = sigma^2 d / (T - d - 1):

        * replace (fixed or fresh design): the errors add up, c (1 + lam t): linear growth;
        * accumulate, fixed design: generation t averages the fits of its t + 1 label sets, so
          e_t = e_{t-1} + eta_t / (t + 1) and E||e_t||^2 = c sum_{j=0..t} lam_j / (j + 1)^2 <= c pi^2 / 6
          (bounded; Gerstgrasser et al. 2024, Theorem 1).

        With a shifted share p of the real rows (strong model collapse), generation 0's fit adds
        (X^T X)^-1 X_s^T X_s Delta, whose squared norm has, for isotropic Gaussian inputs, the deterministic
        equivalent ||Delta||^2 [p^2 + p (1 - p) phi / (1 - phi)], phi = d / n (Dohmatob et al. 2025's
        isotropic case; exact as n and d grow at fixed phi: at n = 10 d it is about 2% low, at n = 40 d within
        0.5%).  Its floor p^2 ||Delta||^2 stays however large n grows.  Later generations fit only their own
        noise on top, so the term carries over unchanged (replace and accumulate alike).
        """
        if metric != "w_error_mean" or self.ridge or curation or n <= self.d + 1:
            return None
        t = np.asarray(generations, dtype=float)
        c = self.sigma ** 2 * self.d / (n - self.d - 1)
        bias = self.shift_error(n)
        if regime.fully_synthetic(n):
            return bias + c * (1 + lam * t)
        if regime.pools and not regime.needs_points and self.design == "fixed":  # every label set kept
            j = np.arange(int(np.max(t)) + 1 if np.size(t) else 1)
            terms = np.where(j == 0, 1.0, lam) / (j + 1.0) ** 2
            return bias + c * np.cumsum(terms)[t.astype(int)]
        return None

    def shift_error(self, n: int) -> float:
        """The deterministic equivalent of E||(X^T X)^-1 X_s^T X_s Delta||^2 (see :meth:`closed_form`)."""
        p = self.shifted_rows(n) / n
        if not p:
            return 0.0
        phi = self.d / n
        return float(self.delta @ self.delta) * (p * p + p * (1 - p) * phi / (1 - phi))
