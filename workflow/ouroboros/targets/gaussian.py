"""d-dimensional Gaussian refit by maximum likelihood each generation.

The truth is N(0, I).  R replicate chains are vectorised with numpy.  Two
sampling methods give the same distribution of fitted models:

* ``sample`` draws the n points of each generation and refits on them (where nothing reads the points,
  only their statistics are kept, derived from the standard normals: :meth:`GaussianTarget.sample_summaries`);
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

from ouroboros import data as D
from ouroboros.data import Data, Stats
from ouroboros.regimes import Regime
from ouroboros import parallel
from ouroboros.targets.base import Target, mean_and_median
from ouroboros.targets.capabilities import ClosedForm, Curatable, ExactMethod, SufficientStatistics

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


class GaussianTarget(ExactMethod, SufficientStatistics, Curatable, ClosedForm, Target):
    name = "gaussian"
    headline = "var_ratio_mean"
    test_settings = ({"params": {"method": "sample"}, "n": 12, "replicates": 30},)
    default_block = 1000
    exact_method = "sufficient"
    curation_hooks = ("candidates", "truth_logpdf", "loglik", "features", "duplicates")
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "d": {"stage": "data", "type": "integer", "minimum": 1, "default": 1, "description": "dimension"},
            "ddof": {"stage": "fit", "type": "integer", "minimum": 0, "default": 0,
                     "description": "delta degrees of freedom of the variance estimate (0: MLE, as np.std)"},
            "method": {"stage": "sample", "enum": ["auto", "sample", "sufficient"], "default": "auto",
                       "description": "draw the points, or draw their sufficient statistics exactly"},
        },
    }
    units = {"kl_truth_model": "nats", "collapsed_fraction": "share"}
    infinite_metrics = frozenset({"kl_truth_model"})  # a replicate collapsed to a point: KL(truth || model) = inf
    default_metric_data = "model"
    metrics = {
        "std_mean": "mean over replicates of the fitted std (sqrt(trace(Sigma)/d))",
        "std_median": "median over replicates of the fitted std",
        "var_ratio_mean": "mean over replicates of sigma_t^2 / sigma_0^2",
        "var_ratio_median": "median over replicates of sigma_t^2 / sigma_0^2",
        "var_mean": "mean over replicates of the fitted variance sigma_t^2 = trace(Sigma) / d (the truth's is 1)",
        "var_sq_error": "mean over replicates of (sigma_t^2 - 1)^2, the variance's risk (sigma_t^2 = trace(Sigma) / d)",
        "mean_sq": "mean over replicates of ||mu_t||^2, the squared distance of the fitted mean to the truth's",
        "mean_drift": "mean over replicates of ||mu_t - mu_0||",
        "w2_to_truth": "mean over replicates of the Wasserstein-2 distance to the truth N(0, I)",
        "kl_truth_model": "KL(truth || model) = (tr Sigma^-1 + mu' Sigma^-1 mu - d + ln det Sigma) / 2, mean over replicates",
        "collapsed_fraction": f"share of replicates whose std is below {COLLAPSE_STD:g}",
    }

    def __init__(self, d: int = 1, ddof: int = 0, method: str = "auto"):
        super().__init__(d=d, ddof=ddof, method=method)
        self.d, self.ddof, self.method = int(d), int(ddof), method
        self.curation_picks_items = False

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        problem = super().check(regime, n, replicates)
        if problem:
            return problem
        if n - self.ddof <= 0:
            return f"ddof={self.ddof} needs n > ddof, got n={n}"
        return None

    def threads(self, n: int, replicates: int) -> int:
        return 1 if self.method == "sufficient" else parallel.wanted_threads(replicates, n * self.d)

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
        if d == 1:  # scale and shift each chunk in place, in its thread (a large draw runs on the job's threads)
            scale, shift = np.sqrt(lam) * root[:, :, 0][:, None, :], self.mean_[:, None, :]

            def affine(rows, z):
                z *= scale[rows]
                z += shift[rows]
            return parallel.standard_normal(rng, (r, n, d), then=affine)
        z = parallel.standard_normal(rng, (r, n, d))
        return self.mean_[:, None, :] + np.sqrt(lam) * np.einsum("rij,rnj->rni", root, z)

    def summarize(self, points) -> Stats:
        return Stats.from_points(points)

    def sample_summaries(self, sizes, lam, rng):
        """Method ``sample``: the standard normals z of :meth:`sample` (the same stream and chunks), reduced
        in their threads to each part's mean and centred scatter; the points mu + L z (L = sqrt(lam Sigma))
        are never formed: their mean is mu + L mean(z), their scatter L M2(z) L^T.  Equal to summarising the
        drawn points up to rounding."""
        if self.method != "sample" or not len(sizes):
            return super().sample_summaries(sizes, lam, rng)
        r, d = self.mean_.shape
        sizes = [int(s) for s in sizes]
        edges = np.cumsum([0, *sizes])
        zbar = np.zeros((len(sizes), r, d))
        zm2 = np.zeros((len(sizes), r, d, d))

        def reduce(rows, z):
            for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
                if b == a:
                    continue
                part = z[:, a:b]
                mean = part.mean(axis=1)
                zbar[i, rows] = mean
                if d == 1:
                    zz = part[..., 0]
                    zm2[i, rows, 0, 0] = np.einsum("rn,rn->r", zz, zz) - (b - a) * mean[:, 0] ** 2
                else:
                    zm2[i, rows] = np.einsum("rni,rnj->rij", part, part) - (b - a) * np.einsum(
                        "ri,rj->rij", mean, mean)
        parallel.standard_normal_reduce(rng, (r, int(edges[-1]), d), reduce)
        root = np.sqrt(lam) * psd_sqrt(self.cov_)
        parts = tuple(Stats(np.full(r, float(s)), self.mean_ + np.einsum("rij,rj->ri", root, zbar[i]),
                            np.einsum("rik,rkl,rjl->rij", root, zm2[i], root))
                      for i, s in enumerate(sizes))
        return parts[0] if len(parts) == 1 else D.Parts(parts)

    # -- curation hooks ----------------------------------------------------------------
    def truth_logpdf(self, items):
        x = np.asarray(items, dtype=float)
        return -0.5 * np.sum(x * x, axis=-1) - 0.5 * self.d * np.log(2 * np.pi)

    def loglik(self, items):
        """log N(x; mean_r, cov_r) per replicate; a collapsed covariance is floored at 1e-300."""
        x = np.asarray(items, dtype=float) - self.mean_[:, None, :]
        w, v = np.linalg.eigh(self.cov_)
        w = np.clip(w, 1e-300, None)
        y = np.einsum("rji,rnj->rni", v, x)
        maha = np.sum(y * y / w[:, None, :], axis=-1)
        return -0.5 * (maha + np.sum(np.log(w), axis=-1)[:, None] + self.d * np.log(2 * np.pi))

    def feature_dim(self):
        return self.d

    def model_bytes(self):
        return 8 * (self.d + self.d * self.d)

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

    def kl_from_standard_normal(self) -> np.ndarray:
        """KL(N(0, I) || N(mu, Sigma)) per replicate (inf where Sigma is singular)."""
        w, v = np.linalg.eigh(self.cov_)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            inv_w = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0), np.inf)
            y = np.einsum("rji,rj->ri", v, self.mean_)
            kl = 0.5 * (np.sum(inv_w, axis=1) + np.sum(y * y * inv_w, axis=1) - self.d
                        + np.sum(np.log(np.where(w > 0, w, 0.0)), axis=1))
        return np.where(np.isnan(kl), np.inf, kl)

    def evaluate(self, samples, real, reference, gen0):
        var, var0 = self.variance(), gen0.variance()
        std = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(var0 > 0, var / var0, np.nan)
        out = {}
        out.update(mean_and_median("std", std))
        out.update(mean_and_median("var_ratio", ratio))
        out["var_mean"] = float(np.mean(var))
        out["var_sq_error"] = float(np.mean((var - 1.0) ** 2))
        out["mean_sq"] = float(np.mean(np.sum(self.mean_ ** 2, axis=1)))
        out["mean_drift"] = float(np.mean(np.linalg.norm(self.mean_ - gen0.mean_, axis=1)))
        out["w2_to_truth"] = float(np.mean(self.w2_to_standard_normal()))
        out["kl_truth_model"] = float(np.mean(self.kl_from_standard_normal()))
        out["collapsed_fraction"] = float(np.mean(std < COLLAPSE_STD))
        return out

    # -- theory ------------------------------------------------------------------
    def closed_form(self, metric, generations, regime, n, lam, curation=None):
        """Expectations under ``replace``, truth N(0, I).

        Without curation (exact): each refit scales the covariance by a Wishart(n - 1)/(n - ddof) factor,
        so E[var_ratio_t] = (lam (n - 1) / (n - ddof))^t in any dimension and, for d = 1,
        E[std_t] = lam^(t/2) * kappa^(t + 1) with kappa = E[sqrt(chi2_{n-1} / (n - ddof))] (generation 0
        fits the real data).  With curation, see :func:`selection_law`.

        ``var_mean`` and ``mean_sq`` also under the fresh-data loop (``mix`` with ``fresh``, weighted or not) and
        a fixed real set plus synthetic data (``mix`` reusing all n real items): see :func:`mix_moments`; and
        under ``accumulate``: see :func:`accumulate_moments`.  ``var_sq_error`` for d = 1 under replace and
        accumulate: :func:`variance_risk`.
        """
        if metric in ("var_mean", "mean_sq") and not curation:
            G = int(np.max(generations)) if np.size(generations) else 0
            moments = (accumulate_moments(n, lam, self.d, self.ddof, G) if accumulates_everything(regime, n)
                       else mix_moments(regime, n, lam, self.d, self.ddof, G))
            if moments is None:
                return None
            return moments[metric][np.asarray(generations, dtype=int)]
        if metric == "var_sq_error":
            if curation or self.d != 1:
                return None
            G = int(np.max(generations)) if np.size(generations) else 0
            risk = variance_risk(n, lam, self.ddof, G, accumulates_everything(regime, n), regime.fully_synthetic(n))
            return None if risk is None else risk[np.asarray(generations, dtype=int)]
        if not regime.fully_synthetic(n):
            return None
        t = np.asarray(generations, dtype=float)
        shrink = lam * (n - 1) / (n - self.ddof)
        if curation:
            law = selection_law(curation, self.d)
            if law is None:
                return None
            if metric == "var_ratio_mean":
                return (shrink * law["variance_factor"]) ** t
            if metric == "mean_drift":
                return selection_drift(law, t, shrink, lam, n, self.ddof)
            return None
        if metric == "var_ratio_mean":
            return shrink ** t
        if metric == "std_mean" and self.d == 1:
            from scipy.special import gammaln

            log_kappa = 0.5 * np.log(2.0 / (n - self.ddof)) + gammaln(n / 2) - gammaln((n - 1) / 2)
            return np.exp(0.5 * t * np.log(lam) + (t + 1) * log_kappa)
        return None


def accumulates_everything(regime: Regime, n: int) -> bool:
    """Whether generation t fits the pool real + S_0 + ... + S_{t-1} whole, n synthetic items a generation."""
    return regime.pools and not regime.needs_points and regime.n_synthetic(n) == n


def accumulate_moments(n: int, lam: float, d: int, ddof: int, G: int) -> dict:
    """E[sigma_t^2] (``var_mean``) and E||mu_t||^2 (``mean_sq``) for t = 0..G under ``accumulate``, truth N(0, I_d),
    exact (Dey and Donoho 2024's accumulation of a maximum-likelihood refit).

    Generation t fits the pool of N_t = n (t + 1) items: the real ones and n drawn from each earlier model.
    Folding S_{t-1} (n items from N(mu_{t-1}, lam Sigma_{t-1})) into the pool moves the mean by eta / (t + 1),
    E||eta||^2 = d lam v_{t-1} / n, and adds to the centred scatter (per dimension, W) the sample's own,
    (n - 1) lam v_{t-1}, and the gap's, (N_{t-1} n / N_t) lam v_{t-1} / n:

        m_t = m_{t-1} + d lam v_{t-1} / (n (t + 1)^2),   W_t = W_{t-1} + lam v_{t-1} (n - 1 + t / (t + 1)),
        v_t = W_t / (N_t - ddof),   from m_0 = d / n, W_0 = n - 1.

    With lam = 1 the variance stays near 1, so the mean's risk m_t / m_0 stays below sum 1/j^2 < pi^2 / 6 (where
    replacing grows it as t + 1)."""
    v = np.empty(G + 1)
    m = np.empty(G + 1)
    W = n - 1.0
    v[0], m[0] = W / (n - ddof), d / n
    for t in range(1, G + 1):
        m[t] = m[t - 1] + d * lam * v[t - 1] / (n * (t + 1) ** 2)
        W += lam * v[t - 1] * (n - 1 + t / (t + 1))
        v[t] = W / (n * (t + 1) - ddof)
    return {"var_mean": v, "mean_sq": m}


def variance_risk(n: int, lam: float, ddof: int, G: int, pooled: bool, replaced: bool) -> Optional[np.ndarray]:
    """E[(sigma_t^2 - 1)^2] for t = 0..G, d = 1, truth N(0, 1), exact under replace (``replaced``) or accumulate
    (``pooled``), else None.

    The centred scatter M of the fit's data is a product of independent factors, so its first two moments
    multiply: generation 0 has M_0 ~ chi2_{n-1} (E M = n - 1, E M^2 = (n - 1)(n + 1)); replacing,
    sigma_t^2 = lam sigma_{t-1}^2 chi2_{n-1} / (n - ddof); accumulating, folding S_{t-1} into a pool of
    N_{t-1} = n t items gives M_t = M_{t-1} (1 + c Q), c = lam / (N_{t-1} - ddof), Q = chi2_{n-1} + (t / (t + 1))
    chi2_1 (the sample's scatter and its mean's gap), sigma_t^2 = M_t / (N_t - ddof)."""
    if not (pooled or replaced):
        return None
    m1, m2 = float(n - 1), float((n - 1) * (n + 1))  # E M, E M^2 of generation 0's data
    out = np.empty(G + 1)
    for t in range(G + 1):
        if t:
            if pooled:
                c, a = lam / (n * t - ddof), t / (t + 1)
                eq = n - 1 + a
                eq2 = 2 * (n - 1) + 2 * a * a + eq * eq
                m1, m2 = m1 * (1 + c * eq), m2 * (1 + 2 * c * eq + c * c * eq2)
            else:  # M_t / (n - ddof) = lam (M_{t-1} / (n - ddof)) chi2_{n-1} / (n - ddof): M scales the same way
                f = lam / (n - ddof)
                m1, m2 = m1 * f * (n - 1), m2 * f * f * (n - 1) * (n + 1)
        N = n * (t + 1) if pooled else n
        v1, v2 = m1 / (N - ddof), m2 / (N - ddof) ** 2
        out[t] = v2 - 2 * v1 + 1
    return out


def mix_moments(regime: Regime, n: int, lam: float, d: int, ddof: int, G: int) -> Optional[dict]:
    """E[sigma_t^2] (``var_mean``) and E||mu_t||^2 (``mean_sq``) for t = 0..G, truth N(0, I_d), exact.

    Generation t >= 1 fits n_r real and n_s synthetic items (N = n_r + n_s, rho = n_r / N), the synthetic ones
    drawn from N(mu_{t-1}, lam Sigma_{t-1}): any regime that reads S_{t-1} only (``Regime.markov``: replace,
    mix, window with k = 1), its real items fresh or the whole real set.  The fitted moments are linear in the previous ones, so their
    expectations follow a linear recursion (v: variance per dimension, m: E||mu||^2):

    * fresh real items each generation (Alemohammad et al.'s fresh-data loop; replace is n_r = 0), the real part
      weighing w in the refit (w = rho unless the regime sets ``real_weight``; the fit is the weighted MLE):
      v' = N [w (1 - 1/n_r) + (1 - w)(1 - 1/n_s) lam v + w (1 - w)(m / d + 1/n_r + lam v / n_s)] / (N - ddof),
      m' = (1 - w)^2 m + d (w^2 / n_r + (1 - w)^2 lam v / n_s)
      (with w = rho: v' = [(N - 1)(rho + (1 - rho) lam v) + N rho (1 - rho) m / d] / (N - ddof)); the stationary
      m at lam = 1 and v = 1 is d (w^2 + (1 - w)^2) / (n (1 - (1 - w)^2)) for n_r = n_s = n, smallest where
      w^2 + w - 1 = 0, w = 1 / phi (He, Xu and Cheng 2026);
    * the same n real items every generation (Bertrand et al.'s fixed real set plus synthetic data), with
      delta = E||mu - mean of the real set||^2 and m = d / n + delta:
      v' = [(n - 1) + lam v (n_s - 1 + n / N) + n n_s delta / (N d)] / (N - ddof),
      delta' = (1 - rho)^2 (delta + d lam v / n_s).

    Generation 0 fits the n real items: v_0 = (n - 1) / (n - ddof), m_0 = d / n.  The stationary values are
    the fixed point of the recursion.  None for regimes without a closed form (accumulate, windows of k > 1,
    a random subset of the real set).
    """
    if not regime.markov:
        return None
    nr, ns = regime.n_real(n), regime.n_synthetic(n)
    fresh = regime.fresh_real or nr == 0
    if not fresh and nr != n:  # a random subset of the real set
        return None
    N = nr + ns
    if N - ddof <= 0 or n - ddof <= 0:
        return None
    rho = nr / N
    w = regime.weights(n)[0]  # the real items' share of the refit (rho unless the regime weighs them)
    if not fresh and not np.isclose(w, rho):
        return None
    v = np.empty(G + 1)
    m = np.empty(G + 1)
    v[0], m[0] = (n - 1) / (n - ddof), d / n
    delta = 0.0
    for t in range(1, G + 1):
        if fresh:  # weighted: w of the real part's biased variance, 1 - w of the synthetic's, w (1 - w) of the gap
            real_var = w * (1 - 1 / nr) if nr else 0.0
            syn_var = (1 - w) * (1 - 1 / ns) * lam * v[t - 1] if ns else 0.0
            gap = m[t - 1] / d + (1 / nr if nr else 0.0) + (lam * v[t - 1] / ns if ns else 0.0)
            v[t] = N * (real_var + syn_var + w * (1 - w) * gap) / (N - ddof)
            m[t] = (1 - w) ** 2 * m[t - 1] + d * ((w ** 2 / nr if nr else 0.0) + ((1 - w) ** 2 * lam * v[t - 1] / ns if ns else 0.0))
        else:
            v[t] = ((n - 1) + lam * v[t - 1] * (ns - 1 + n / N) + n * ns * delta / (N * d)) / (N - ddof)
            delta = (1 - rho) ** 2 * (delta + (d * lam * v[t - 1] / ns if ns else 0.0))
            m[t] = d / n + delta
    return {"var_mean": v, "mean_sq": m}


def selection_law(curation: dict, d: int) -> Optional[dict]:
    """What one curated generation does to a 1-D normal N(mu, s^2), where a closed form exists.

    * ``top`` with a linear reward r(x) = w x (truncation selection keeping the fraction q above
      z = Phi^-1(1 - q)): the kept items have mean mu + sign(w) i s and variance s^2 (1 + z i - i^2),
      i = phi(z) / q (the selection intensity; large-sample limit).
    * ``choice`` (Bradley-Terry among K) with a linear reward: as K -> infinity the kept items follow the
      exponential tilt p(x) exp(gamma w x), for a normal N(mu + gamma w s^2, s^2).

    Returns {"shift_sd": mean shift in units of s, "shift_var": mean shift in units of s^2,
    "variance_factor": ...} or None.
    """
    from scipy.stats import norm

    if d != 1 or curation.get("scorer") != "reward" or curation["reward"]["kind"] != "linear":
        return None
    w = float(curation["reward"]["w"][0])
    if curation["selector"] == "top":
        q = float(curation["q"])
        if q >= 1 or w == 0:
            return {"shift_sd": 0.0, "shift_var": 0.0, "variance_factor": 1.0}
        z = norm.ppf(1 - q)
        i = norm.pdf(z) / q
        return {"shift_sd": float(np.sign(w)) * i, "shift_var": 0.0, "variance_factor": 1 + z * i - i * i}
    if curation["selector"] == "choice":
        return {"shift_sd": 0.0, "shift_var": float(curation["gamma"]) * w, "variance_factor": 1.0}
    return None


def selection_drift(law: dict, t: np.ndarray, shrink: float, lam: float, n: int, ddof: int) -> np.ndarray:
    """E|mu_t - mu_0| for a selection law under replace, when the drift dominates the sampling noise:
    the sum of the per-generation shifts, each on the spread of the samples it selects from
    (lam s_j^2, with s_j^2 = s_0^2 (shrink * factor)^j and E s_0^2 = (n - 1) / (n - ddof))."""
    g = np.arange(int(np.max(t)) + 1 if np.size(t) else 1)
    var = (n - 1) / (n - ddof) * (shrink * law["variance_factor"]) ** g  # model variance at generation j
    step = law["shift_sd"] * np.sqrt(lam * var) + law["shift_var"] * lam * var
    drift = np.concatenate([[0.0], np.cumsum(step)])
    return np.abs(drift[np.asarray(t, dtype=int)])
