"""A Gaussian kernel density estimate refit each generation: the 2-D toy setting of Kazdan et al. 2024.

The truth is one of scikit-learn's 2-D generators (``blobs``: three fixed centres, ``moons``, ``circles``).
Items are points shaped (R, n, 2).  The fit keeps its training points and a bandwidth h, fixed or by a rule
on the training set (Scott: h = N^(-1/(d+4)) s, Silverman: h = (N (d + 2) / 4)^(-1/(d+4)) s, s^2 the mean of
the coordinates' unbiased variances); ``sample`` picks a training point uniformly and adds N(0, lam h^2 I)
(the sampling bias lam narrows the kernel).  R replicates are vectorised with numpy.

The model's spread has an exact recursion (:meth:`KDETarget.closed_form`): a KDE's covariance is its points'
(biased) covariance plus h^2 I, and n draws keep (1 - 1/n) of a distribution's variance in expectation, so
under replace with a fixed h the training set's total variance drifts to its stationary value (n - 1) d h^2
whatever the data; with a rule (h proportional to the spread) it grows or shrinks geometrically.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ouroboros import data as D
from ouroboros import metrics as M
from ouroboros.data import Data
from ouroboros.settings import settings_schema
from ouroboros.targets.base import Target
from ouroboros.targets.capabilities import ClosedForm

#: the blobs' fixed centres (scikit-learn would draw them at random)
BLOB_CENTRES = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])


def draw_dataset(name: str, noise: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` points (size, 2) of a scikit-learn generator, shuffled, seeded from ``rng``."""
    from sklearn import datasets

    seed = int(rng.integers(2 ** 31 - 1))
    if name == "moons":
        x, _ = datasets.make_moons(size, noise=noise, random_state=seed)
    elif name == "circles":
        x, _ = datasets.make_circles(size, noise=noise, factor=0.5, random_state=seed)
    else:
        x, _ = datasets.make_blobs(size, centers=BLOB_CENTRES, cluster_std=max(noise, 1e-12), random_state=seed)
    return x


def bandwidth_factor(rule: str, N, d: int):
    """The rule's factor f with h = f s (Scott or Silverman) for N points in d dimensions."""
    N = np.asarray(N, dtype=float)
    if rule == "scott":
        return N ** (-1.0 / (d + 4))
    return (N * (d + 2) / 4.0) ** (-1.0 / (d + 4))


class KDETarget(ClosedForm, Target):
    name = "kde"
    headline = "total_variance"
    test_settings = ({"params": {"dataset": "moons", "test_size": 50}, "n": 12, "replicates": 4},
                     {"params": {"dataset": "blobs", "bandwidth_rule": "scott", "test_size": 50}, "n": 10,
                      "replicates": 3})
    default_block = 10
    params_schema = settings_schema({
        "dataset": {"stage": "data", "enum": ["moons", "circles", "blobs"], "default": "moons",
                    "description": "the truth: scikit-learn's make_moons, make_circles (factor 0.5) or make_blobs "
                                   "(three fixed centres)"},
        "noise": {"stage": "data", "type": "number", "minimum": 0, "default": 0.1,
                  "description": "the generator's noise (moons, circles) or the blobs' standard deviation"},
        "bandwidth_rule": {"stage": "fit", "enum": ["fixed", "scott", "silverman"], "default": "fixed",
                           "description": "a fixed bandwidth, or Scott's or Silverman's rule on each training set"},
        "bandwidth": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 0.1,
                      "description": "h of the fixed rule"},
        "test_size": {"stage": "data", "type": "integer", "minimum": 6, "default": 500,
                      "description": "held-out real points the log-likelihood, density and coverage are measured on"},
        "eval_replicates": {"stage": "evaluate", "type": "integer", "minimum": 1, "default": 20,
                            "description": "replicates (the first ones) the held-out likelihood and the sample metrics "
                                           "(density, coverage, Vendi) are averaged over: they cost a pass over every "
                                           "point of the model; the spreads use every replicate"},
        "vendi_scale": {"stage": "evaluate", "type": "number", "exclusiveMinimum": 0, "default": 0.1,
                        "description": "length scale of the Gaussian kernel of the Vendi score (points closer than "
                                       "about this count as alike)"},
    })
    units = {"test_loglik": "nats per point", "vendi": "effective points", "coverage": "share"}
    metric_data = {"test_loglik": "real", "density": "real", "coverage": "real", "vendi": "samples"}
    default_metric_data = "model"
    metrics = {
        "total_variance": "trace of the fitted KDE's covariance (its points' biased covariance + h^2 I), mean over "
                          "replicates",
        "data_variance": "trace of the training set's biased covariance, mean over replicates",
        "bandwidth": "the kernel's h, mean over replicates",
        "test_loglik": "mean log-density of held-out real points under the KDE (nats per point), mean over the first "
                       "eval_replicates replicates",
        "density": "density of the generation's samples against the held-out real points (Naeem et al. 2020, k = 5: "
                   "1 when they match, above 1 when samples crowd the real modes), mean over the first eval_replicates",
        "coverage": "share of held-out real points whose 5-NN ball holds a sample (Naeem et al. 2020), mean over "
                    "the first eval_replicates",
        "vendi": "Vendi score of the generation's samples (Gaussian kernel of scale vendi_scale): their effective "
                 "number of distinct points, mean over the first eval_replicates",
    }

    def __init__(self, dataset="moons", noise=0.1, bandwidth_rule="fixed", bandwidth=0.1, test_size=500,
                 eval_replicates=20, vendi_scale=0.1):
        super().__init__(dataset=dataset, noise=noise, bandwidth_rule=bandwidth_rule, bandwidth=bandwidth,
                         test_size=test_size, eval_replicates=eval_replicates, vendi_scale=vendi_scale)
        self.d = 2
        self.rule, self.h_fixed = bandwidth_rule, float(bandwidth)

    # -- data --------------------------------------------------------------------
    def _draw(self, rng, m, replicates):
        x = draw_dataset(self.params["dataset"], float(self.params["noise"]), rng, m * replicates)
        return x.reshape(replicates, m, self.d)

    def real_data(self, rng, n, replicates):
        return {"train": self._draw(rng, n, replicates), "test": self._draw(rng, int(self.params["test_size"]), 1)}

    def draw_real(self, rng, m, replicates):
        return self._draw(rng, m, replicates)

    @functools.cached_property
    def truth_variance(self) -> float:
        """The truth's total variance, from 400,000 draws of a fixed stream (its Monte Carlo error is far below a
        study's)."""
        x = draw_dataset(self.params["dataset"], float(self.params["noise"]), np.random.default_rng(20240801), 400_000)
        return float(np.trace(np.cov(x.T)))

    def item_bytes(self):
        return 8 * self.d

    # -- model -------------------------------------------------------------------
    def fit(self, data: Data, rng=None) -> "KDETarget":
        if isinstance(data, D.Summary):
            raise TypeError("the KDE keeps its training points, not statistics")
        points = np.asarray(D.items_array(data), float)
        weights = (data.mask if isinstance(data, D.Masked) else np.ones(points.shape[:2], bool)).astype(float)
        self.points_, self.weights_ = points, weights
        self.h_ = self._bandwidth(points, weights)
        return self

    def _moments(self, points=None, weights=None):
        """(count N, total biased variance) of each replicate's weighted points."""
        points = self.points_ if points is None else points
        weights = self.weights_ if weights is None else weights
        stats = D.Stats.from_masked(D.Masked(points, weights > 0))
        return stats.count, np.trace(stats.m2, axis1=1, axis2=2) / stats.count

    def _bandwidth(self, points, weights) -> np.ndarray:
        if self.rule == "fixed":
            return np.full(points.shape[0], self.h_fixed)
        N, var = self._moments(points, weights)
        s2 = var * N / np.maximum(N - 1, 1) / self.d  # the mean of the coordinates' unbiased variances
        return bandwidth_factor(self.rule, N, self.d) * np.sqrt(s2)

    def sample(self, n, lam, rng):
        idx = D.draw_indices(rng, self.weights_, n)
        centres = self.points_[np.arange(idx.shape[0])[:, None], idx]
        return centres + np.sqrt(lam) * self.h_[:, None, None] * rng.standard_normal(centres.shape)

    def get_state(self):
        return {"points": self.points_, "weights": self.weights_, "h": self.h_}

    def set_state(self, state):
        self.points_ = np.asarray(state["points"], float)
        self.weights_ = np.asarray(state["weights"], float)
        self.h_ = np.asarray(state["h"], float)
        return self

    # -- metrics -----------------------------------------------------------------
    def log_density(self, x: np.ndarray, replicates: Optional[int] = None, max_elements: int = 2 ** 24) -> np.ndarray:
        """log-density of points x (m, d) under each replicate's KDE (the first ``replicates``) -> (R, m), in
        chunks of x small enough that the squared distances computed at once hold at most ``max_elements``."""
        from scipy.special import logsumexp

        points, weights, h2 = self.points_[:replicates], self.weights_[:replicates], self.h_[:replicates] ** 2
        r, N, d = points.shape
        with np.errstate(divide="ignore"):
            logw = np.log(weights / weights.sum(axis=1, keepdims=True))  # -inf on masked-out points
        p2 = np.einsum("rnd,rnd->rn", points, points)
        chunk = max(1, max_elements // (r * N))
        out = np.empty((r, x.shape[0]))
        for a in range(0, x.shape[0], chunk):
            xs = x[a:a + chunk]
            sq = np.einsum("md,md->m", xs, xs)[None, :, None] + p2[:, None, :] - 2 * np.einsum("md,rnd->rmn", xs, points)
            out[:, a:a + chunk] = logsumexp(logw[:, None, :] - np.maximum(sq, 0.0) / (2 * h2[:, None, None]), axis=2) \
                - 0.5 * d * np.log(2 * np.pi * h2)[:, None]
        return out

    def evaluate(self, samples, real, reference, gen0):
        _, var = self._moments()
        test = np.asarray(real["test"], float)[0]
        k = int(self.params["eval_replicates"])
        sample_metrics = []
        for x in (np.asarray(D.items(samples, i), float) for i in range(min(k, D.items_array(samples).shape[0]))):
            density, coverage = M.density_coverage(test, x, k=5) if len(x) > 5 else (np.nan, np.nan)
            sample_metrics.append((density, coverage, M.vendi(M.rbf_kernel(x, float(self.params["vendi_scale"])))))
        density, coverage, vendi = np.nanmean(np.array(sample_metrics), axis=0)
        return {"total_variance": float((var + self.d * self.h_ ** 2).mean()), "data_variance": float(var.mean()),
                "bandwidth": float(self.h_.mean()), "test_loglik": float(self.log_density(test, k).mean()),
                "density": float(density), "coverage": float(coverage), "vendi": float(vendi)}

    # -- theory ------------------------------------------------------------------
    def closed_form(self, metric, generations, regime, n, lam, curation=None):
        """E[data_variance] v_t and E[total_variance] v_t + d E h_t^2 under replace and accumulate (no
        curation), exact given the truth's total variance V (:attr:`truth_variance`).

        A KDE on N points of biased total variance v has total variance v + d h^2 (sampling with bias lam:
        v + lam d h^2), and n draws from it keep (1 - 1/n) of that in their biased variance.  With a fixed h,
        d h^2 is a constant; with a rule, d h^2 = f(N)^2 v N / (N - 1), linear in v too.  From v_0 = (1 - 1/n) V:

        * replace: v_t = (1 - 1/n) s_{t-1}, s the sampling distribution's variance; with a fixed h,
          v_t -> (n - 1) lam d h^2 whatever the data (the kernel's stationary spread); with a rule,
          v_t = v_{t-1} ((n - 1) / n + lam f(n)^2): geometric growth when f(n)^2 > 1/n (Scott, Silverman);
        * accumulate (the pool of every generation's n points; Kazdan et al. 2024): the pool's scatter W gains
          s_{t-1} (n - 1 + t / (t + 1)) per generation (the new points' own and their mean's gap), v_t = W_t / N_t.
        """
        if metric not in ("data_variance", "total_variance") or curation:
            return None
        pooled = regime.pools and not regime.needs_points and regime.n_synthetic(n) == n
        if not (pooled or regime.fully_synthetic(n)):
            return None
        t = np.asarray(generations, dtype=int)
        G = int(t.max()) if t.size else 0

        def kernel(v, N, bias=1.0):  # d h^2 (times the sampling bias) of a KDE on N points of total variance v
            if self.rule == "fixed":
                return bias * self.d * self.h_fixed ** 2
            return bias * float(bandwidth_factor(self.rule, N, self.d)) ** 2 * v * N / (N - 1)

        v = np.empty(G + 1)
        v[0] = (1 - 1 / n) * self.truth_variance
        W = n * v[0]
        for g in range(1, G + 1):
            N_prev = n * g if pooled else n
            s = v[g - 1] + kernel(v[g - 1], N_prev, lam)
            if pooled:
                W += s * (n - 1 + g / (g + 1))
                v[g] = W / (n * (g + 1))
            else:
                v[g] = (1 - 1 / n) * s
        if metric == "data_variance":
            return v[t]
        N = n * (t + 1) if pooled else np.full(t.shape, n)
        return np.array([v[g] + kernel(v[g], N[i]) for i, g in enumerate(t)])
