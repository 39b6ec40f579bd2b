"""d-dimensional Gaussian refit by maximum likelihood each generation.

The truth is N(0, I).  R replicate chains are vectorised with numpy.  Two
sampling methods give the same distribution of fitted models:

* ``sample`` draws the n points of each generation and refits on them;
* ``sufficient`` draws the refit's sufficient statistics directly from their
  exact sampling distributions: for n points from N(mu, lam * Sigma) the sample
  mean is N(mu, lam * Sigma / n) and the centred scatter matrix is
  Wishart(n - 1, lam * Sigma), independent of the mean (drawn with the Bartlett
  decomposition).  Pooling for ``accumulate`` and ``mix`` merges statistics.
  Exact and orders of magnitude cheaper; it cannot serve
  ``accumulate-subsample``, which must pick individual points.
* ``auto`` (default) uses ``sufficient`` wherever it is exact, else ``sample``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from workflow.data import Data, Stats
from workflow.regimes import Regime
from workflow.targets.base import Target, mean_and_median

COLLAPSE_STD = 1e-3


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square roots of a stack of PSD matrices (negative eigenvalues clipped)."""
    if cov.shape[-1] == 1:
        return np.sqrt(np.clip(cov, 0.0, None))
    w, v = np.linalg.eigh(cov)
    return np.einsum("...ij,...j,...kj->...ik", v, np.sqrt(np.clip(w, 0.0, None)), v)


def wishart_identity(rng: np.random.Generator, dof: int, r: int, d: int) -> np.ndarray:
    """r draws of Wishart(dof, I_d), shaped (r, d, d); dof may be below d (singular)."""
    if dof <= 0:
        return np.zeros((r, d, d))
    if d == 1:
        return rng.chisquare(dof, size=r)[:, None, None]
    if dof < d:
        z = rng.standard_normal((r, dof, d))
        return np.einsum("rki,rkj->rij", z, z)
    # Bartlett: W = T T^T, T lower triangular, T_ii^2 ~ chi2(dof - i), T_ij ~ N(0, 1) below the diagonal
    t = np.zeros((r, d, d))
    diag = np.sqrt(rng.chisquare(dof - np.arange(d), size=(r, d)))
    t[:, np.arange(d), np.arange(d)] = diag
    rows, cols = np.tril_indices(d, -1)
    t[:, rows, cols] = rng.standard_normal((r, rows.size))
    return np.einsum("rik,rjk->rij", t, t)


class GaussianTarget(Target):
    name = "gaussian"
    default_block = 1000
    stats_sufficient = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "d": {"type": "integer", "minimum": 1, "default": 1, "description": "dimension"},
            "ddof": {"type": "integer", "minimum": 0, "default": 0,
                     "description": "delta degrees of freedom of the variance estimate (0: MLE, as np.std)"},
            "method": {"enum": ["auto", "sample", "sufficient"], "default": "auto",
                       "description": "draw the points, or draw their sufficient statistics exactly"},
        },
    }
    metrics = {
        "std_mean": "mean over replicates of the fitted std (sqrt(trace(Sigma)/d))",
        "std_median": "median over replicates of the fitted std",
        "var_ratio_mean": "mean over replicates of sigma_t^2 / sigma_0^2",
        "var_ratio_median": "median over replicates of sigma_t^2 / sigma_0^2",
        "mean_drift": "mean over replicates of ||mu_t - mu_0||",
        "w2_to_truth": "mean over replicates of the Wasserstein-2 distance to the truth N(0, I)",
        "collapsed_fraction": f"share of replicates whose std is below {COLLAPSE_STD:g}",
    }

    def __init__(self, d: int = 1, ddof: int = 0, method: str = "auto"):
        super().__init__(d=d, ddof=ddof, method=method)
        self.d, self.ddof, self.method = int(d), int(ddof), method

    def for_regime(self, regime: Regime) -> "GaussianTarget":
        if self.method != "auto":
            return self
        return type(self)(d=self.d, ddof=self.ddof, method="sample" if regime.needs_points else "sufficient")

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        if self.method == "sufficient" and regime.needs_points:
            return ("method 'sufficient' cannot run regime 'accumulate-subsample' (it must pick individual "
                    "points); use method 'sample' or 'auto'")
        if n - self.ddof <= 0:
            return f"ddof={self.ddof} needs n > ddof, got n={n}"
        return None

    # -- data --------------------------------------------------------------------
    def real_data(self, rng, n, replicates):
        return {"train": rng.standard_normal((replicates, n, self.d)),
                "test": rng.standard_normal((1, 1000, self.d))}

    def draw_real(self, rng, m, replicates):
        return rng.standard_normal((replicates, m, self.d))

    # -- model -------------------------------------------------------------------
    def fit(self, data: Data, rng=None) -> "GaussianTarget":
        stats = data if isinstance(data, Stats) else Stats.from_points(data)
        dof = stats.count - self.ddof
        if np.any(dof <= 0):
            raise ValueError(f"cannot fit a Gaussian on {stats.count.min():.0f} points with ddof={self.ddof}")
        self.mean_ = stats.mean
        self.cov_ = stats.m2 / dof[:, None, None]
        return self

    @property
    def replicates(self) -> int:
        return self.mean_.shape[0]

    def sample(self, n: int, lam: float, rng: np.random.Generator) -> Data:
        r, d = self.mean_.shape
        root = psd_sqrt(self.cov_)
        if self.method == "sufficient":
            if n == 0:
                return Stats.empty(r, d)
            z = rng.standard_normal((r, d))
            mean = self.mean_ + np.sqrt(lam / n) * np.einsum("rij,rj->ri", root, z)
            w = wishart_identity(rng, n - 1, r, d)
            m2 = lam * np.einsum("rik,rkl,rjl->rij", root, w, root)
            return Stats(np.full(r, float(n)), mean, m2)
        z = rng.standard_normal((r, n, d))
        if d == 1:
            return self.mean_[:, None, :] + np.sqrt(lam) * root[:, :, 0][:, None, :] * z
        return self.mean_[:, None, :] + np.sqrt(lam) * np.einsum("rij,rnj->rni", root, z)

    def get_state(self):
        return {"mean": self.mean_, "cov": self.cov_}

    def set_state(self, state):
        self.mean_, self.cov_ = np.asarray(state["mean"], float), np.asarray(state["cov"], float)
        return self

    # -- metrics -----------------------------------------------------------------
    def variance(self) -> np.ndarray:
        """sigma^2 = trace(Sigma) / d per replicate."""
        return np.trace(self.cov_, axis1=1, axis2=2) / self.d

    def w2_to_standard_normal(self) -> np.ndarray:
        """W2(N(mu, Sigma), N(0, I)) = sqrt(|mu|^2 + sum_i (sqrt(l_i) - 1)^2), l_i the eigenvalues of Sigma."""
        eig = self.cov_[:, :, 0] if self.d == 1 else np.linalg.eigvalsh(self.cov_)
        eig = np.clip(eig, 0.0, None)
        return np.sqrt(np.sum(self.mean_ ** 2, axis=1) + np.sum((np.sqrt(eig) - 1.0) ** 2, axis=1))

    def evaluate(self, samples, real, reference, gen0):
        var, var0 = self.variance(), gen0.variance()
        std = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(var0 > 0, var / var0, np.nan)
        out = {}
        out.update(mean_and_median("std", std))
        out.update(mean_and_median("var_ratio", ratio))
        out["mean_drift"] = float(np.mean(np.linalg.norm(self.mean_ - gen0.mean_, axis=1)))
        out["w2_to_truth"] = float(np.mean(self.w2_to_standard_normal()))
        out["collapsed_fraction"] = float(np.mean(std < COLLAPSE_STD))
        return out

    # -- theory ------------------------------------------------------------------
    def closed_form(self, metric, generations, regime, n, lam):
        """Exact expectations under ``replace``, truth N(0, I).

        Each refit scales the covariance by a Wishart(n - 1)/(n - ddof) factor,
        so E[var_ratio_t] = (lam (n - 1) / (n - ddof))^t in any dimension and, for
        d = 1, E[std_t] = lam^(t/2) * kappa^(t + 1) with
        kappa = E[sqrt(chi2_{n-1} / (n - ddof))] (generation 0 fits the real data).
        """
        if regime.kind != "replace" and not (regime.kind == "mix" and regime.n_real(n) == 0):
            return None
        t = np.asarray(generations, dtype=float)
        if metric == "var_ratio_mean":
            return (lam * (n - 1) / (n - self.ddof)) ** t
        if metric == "std_mean" and self.d == 1:
            from scipy.special import gammaln

            log_kappa = 0.5 * np.log(2.0 / (n - self.ddof)) + gammaln(n / 2) - gammaln((n - 1) / 2)
            return np.exp(0.5 * t * np.log(lam) + (t + 1) * log_kappa)
        return None
