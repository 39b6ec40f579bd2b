"""Gaussian mixture (full covariances) refit with scikit-learn each generation.

The truth is a configurable mixture: the preset ``separated`` (three well
separated unit-variance modes in 2-D), the preset ``blob`` (a single 2-D
standard normal: the setting of Shumailov et al.'s notebook, fitted with two
components), or an explicit ``{weights, means, stds | covs}``.  R replicates
are fitted one after another (scikit-learn has no batch fit); everything else
is vectorised.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.special import logsumexp

from ouroboros import data as D
from ouroboros import metrics as M
from ouroboros.data import Data, Stats
from ouroboros.regimes import Regime
from ouroboros.targets.base import Target
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.gaussian import psd_sqrt

PRESETS = {
    "separated": {"weights": [1 / 3, 1 / 3, 1 / 3], "means": [[-4.0, 0.0], [4.0, 0.0], [0.0, 6.0]], "stds": [1.0, 1.0, 1.0]},
    "blob": {"weights": [1.0], "means": [[0.0, 0.0]], "stds": [1.0]},
}
TAIL_LEVEL = 0.99


def mixture_from_spec(spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights (K,), means (K, d), covs (K, d, d)) from a preset name or a mapping."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown truth preset {spec!r}; available: {', '.join(PRESETS)}")
        spec = PRESETS[spec]
    w = np.asarray(spec["weights"], dtype=float)
    mu = np.asarray(spec["means"], dtype=float)
    if mu.ndim != 2 or mu.shape[0] != w.size:
        raise ValueError(f"truth.means must be a list of {w.size} points of equal dimension")
    if np.any(w <= 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError("truth.weights must be positive and sum to 1")
    k, d = mu.shape
    if "covs" in spec:
        cov = np.asarray(spec["covs"], dtype=float)
        if cov.shape != (k, d, d):
            raise ValueError(f"truth.covs must be {k} matrices of shape {d}x{d}")
        if np.any(np.linalg.eigvalsh(cov) <= 0):
            raise ValueError("truth.covs must be positive definite")
    else:
        stds = np.broadcast_to(np.asarray(spec.get("stds", 1.0), dtype=float), (k,))
        if np.any(stds <= 0):
            raise ValueError("truth.stds must be positive")
        cov = np.einsum("k,ij->kij", stds ** 2, np.eye(d))
    return w, mu, cov


def mixture_logpdf(x: np.ndarray, w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log density of stacked mixtures. x (R, m, d); w (R, K); mu (R, K, d); cov (R, K, d, d) -> (R, m)."""
    d = x.shape[-1]
    chol = np.linalg.cholesky(cov)
    inv = np.linalg.inv(chol)
    diff = x[:, None, :, :] - mu[:, :, None, :]  # (R, K, m, d)
    y = np.einsum("rkij,rkmj->rkmi", inv, diff)
    maha = np.sum(y * y, axis=-1)
    logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (R, K)
    comp = -0.5 * (maha + d * np.log(2 * np.pi) + logdet[:, :, None]) + np.log(w)[:, :, None]
    return logsumexp(comp, axis=1)


def push_forward(u: np.ndarray, z: np.ndarray, w, mu, cov, lam: float = 1.0) -> np.ndarray:
    """Mixture samples from base noise: u (R|1, m) uniforms choose the component, z (R|1, m, d) normals."""
    r = w.shape[0]
    u = np.broadcast_to(u, (r, u.shape[-1]))
    z = np.broadcast_to(z, (r,) + z.shape[-2:])
    k = np.minimum((u[:, :, None] > np.cumsum(w, axis=1)[:, None, :]).sum(-1), w.shape[1] - 1)
    root = psd_sqrt(cov)  # (R, K, d, d)
    rows = np.arange(r)[:, None]
    return mu[rows, k] + np.sqrt(lam) * np.einsum("rnij,rnj->rni", root[rows, k], z)


class GMMTarget(Curatable, MlflowFlavor, Target):
    name = "gmm"
    headline = "kl_truth_model"
    test_settings = ({"params": {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}, "n": 12, "replicates": 3},)
    default_block = 50
    curation_hooks = ("candidates", "truth_logpdf", "loglik", "features", "duplicates")
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "components": {"stage": "fit", "type": "integer", "minimum": 1, "default": 3, "description": "mixture components fitted"},
            "truth": {"stage": "data",
                "description": "preset name (separated, blob) or {weights, means, stds|covs}",
                "default": "separated",
                "oneOf": [
                    {"enum": sorted(PRESETS)},
                    {"type": "object", "additionalProperties": False, "required": ["weights", "means"],
                     "properties": {"weights": {"type": "array", "items": {"type": "number"}},
                                    "means": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                                    "stds": {"type": "array", "items": {"type": "number"}},
                                    "covs": {"type": "array"}}},
                ],
            },
            "reg_covar": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 1e-6,
                          "description": "added to covariance diagonals by scikit-learn (a floor on collapse)"},
            "max_iter": {"stage": "fit", "type": "integer", "minimum": 1, "default": 100,
                         "description": "EM iterations at most (few: functional approximation error)"},
            "init": {"stage": "fit", "enum": ["kmeans", "k-means++", "random", "random_from_data"], "default": "kmeans",
                     "description": "scikit-learn's initialisation of EM (init_params)"},
            "eval_size": {"stage": "evaluate", "type": "integer", "minimum": 100, "maximum": 10_000_000, "default": 10000,
                          "description": "Monte Carlo sample size of the KL and tail metrics"},
            "test_size": {"stage": "data", "type": "integer", "minimum": 10, "default": 2000, "description": "real held-out points"},
        },
    }
    reference_settings = ("eval_size",)
    units = {"nll_real": "nats per point", "kl_truth_model": "nats", "kl_model_truth": "nats", "coverage": "share",
             "vendi": "effective points"}
    default_metric_data = "model"
    metric_data = {"nll_real": "real", "density": "real", "coverage": "real"}
    metrics = {
        "kl_truth_model": "KL(truth || model), Monte Carlo on a fixed truth sample",
        "kl_model_truth": "KL(model || truth), Monte Carlo on fixed base noise pushed through the model",
        "nll_real": "negative log-likelihood per point of held-out real data",
        "component_std_min": "smallest component std (sqrt(trace/d)), mean over replicates",
        "component_std_max": "largest component std (sqrt(trace/d)), mean over replicates",
        "weight_entropy": "entropy of the mixture weights, mean over replicates",
        "tail_mass_ratio": "model probability beyond the truth's 99th-percentile Mahalanobis radius, over 1%",
        "density": "density of 500 model points against 1,000 held-out real points (Naeem et al. 2020, k = 5: 1 when "
                   "they match, above 1 when the model crowds the real modes), mean over replicates",
        "coverage": "share of 1,000 held-out real points whose 5-NN ball holds one of 500 model points (Naeem et "
                    "al. 2020), mean over replicates",
        "vendi": "Vendi score of 300 model points, Gaussian kernel of scale 0.1 x the truth's std: their effective "
                 "number of distinct points, mean over replicates",
    }

    def __init__(self, components=3, truth="separated", reg_covar=1e-6, max_iter=100, eval_size=10000, test_size=2000,
                 init="kmeans"):
        super().__init__(components=components, truth=truth, reg_covar=reg_covar, max_iter=max_iter,
                         eval_size=eval_size, test_size=test_size, init=init)
        self.components = int(components)
        self.truth_w, self.truth_mu, self.truth_cov = mixture_from_spec(truth)
        self.d = self.truth_mu.shape[1]

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        if regime.n_synthetic(n) and regime.n_synthetic(n) < self.components and not regime.pools:
            return f"a {regime.kind} generation with {regime.n_synthetic(n)} synthetic points cannot fit {self.components} components"
        if n < self.components:
            return f"n={n} is smaller than components={self.components}"
        return None

    # -- truth -------------------------------------------------------------------
    def _truth_stack(self, r=1):
        return (np.broadcast_to(self.truth_w, (r,) + self.truth_w.shape),
                np.broadcast_to(self.truth_mu, (r,) + self.truth_mu.shape),
                np.broadcast_to(self.truth_cov, (r,) + self.truth_cov.shape))

    def _draw_truth(self, rng, r, m):
        u = rng.random((r, m))
        z = rng.standard_normal((r, m, self.d))
        return push_forward(u, z, *self._truth_stack(r))

    def _truth_moments(self):
        w, mu, cov = self.truth_w, self.truth_mu, self.truth_cov
        mean = w @ mu
        diff = mu - mean
        total = np.einsum("k,kij->ij", w, cov) + np.einsum("k,ki,kj->ij", w, diff, diff)
        return mean, total

    def real_data(self, rng, n, replicates):
        return {"train": self._draw_truth(rng, replicates, n), "test": self._draw_truth(rng, 1, self.params["test_size"])}

    def draw_real(self, rng, m, replicates):
        return self._draw_truth(rng, replicates, m)

    def reference(self, rng):
        m = self.params["eval_size"]
        truth_sample = self._draw_truth(rng, 1, m)[0]
        mean, total = self._truth_moments()
        inv = np.linalg.inv(total)
        big = self._draw_truth(rng, 1, max(m, 100_000))[0] - mean
        radius = np.quantile(np.sqrt(np.einsum("mi,ij,mj->m", big, inv, big)), TAIL_LEVEL)
        return {"eval_truth": truth_sample, "eval_u": rng.random(m), "eval_z": rng.standard_normal((m, self.d)),
                "eval_truth_logpdf": mixture_logpdf(truth_sample[None], *self._truth_stack(1))[0],
                "truth_mean": mean, "truth_cov": total, "tail_radius": np.asarray(radius)}

    # -- model -------------------------------------------------------------------
    def fit(self, data: Data, rng: np.random.Generator) -> "GMMTarget":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        if isinstance(data, Stats):
            raise TypeError("the GMM target fits points, not sufficient statistics")
        r = D.counts(data).shape[0]
        seeds = rng.integers(0, 2**31 - 1, size=r)
        w = np.empty((r, self.components))
        mu = np.empty((r, self.components, self.d))
        cov = np.empty((r, self.components, self.d, self.d))
        self.converged_ = np.empty(r, bool)
        for i in range(r):
            gm = GaussianMixture(self.components, covariance_type="full", reg_covar=self.params["reg_covar"],
                                 max_iter=self.params["max_iter"], init_params=self.params["init"],
                                 random_state=int(seeds[i]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                x = D.items(data, i)
                if len(x) < self.components:
                    raise ValueError(f"replicate {i} has {len(x)} training points (after curation), fewer than "
                                     f"components={self.components}")
                gm.fit(x)
            w[i], mu[i], cov[i], self.converged_[i] = gm.weights_, gm.means_, gm.covariances_, gm.converged_
        self.weights_, self.means_, self.covariances_ = w, mu, cov
        return self

    def sample(self, n, lam, rng):
        r = self.weights_.shape[0]
        u = rng.random((r, n))
        z = rng.standard_normal((r, n, self.d))
        return push_forward(u, z, self.weights_, self.means_, self.covariances_, lam)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        r = self.weights_.shape[0]
        x = np.broadcast_to(x, (r,) + x.shape[-2:])
        return mixture_logpdf(x, self.weights_, self.means_, self.covariances_)

    # -- curation hooks ----------------------------------------------------------------
    def truth_logpdf(self, items):
        x = np.asarray(items, dtype=float)
        return mixture_logpdf(x, *self._truth_stack(x.shape[0]))

    def loglik(self, items):
        return self.logpdf(np.asarray(items, dtype=float))

    def feature_dim(self):
        return self.d

    def model_bytes(self):
        return 8 * self.params["components"] * (1 + self.d + self.d * self.d)

    def get_state(self):
        return {"weights": self.weights_, "means": self.means_, "covariances": self.covariances_}

    def set_state(self, state):
        self.weights_ = np.asarray(state["weights"], float)
        self.means_ = np.asarray(state["means"], float)
        self.covariances_ = np.asarray(state["covariances"], float)
        return self

    # -- tracking ----------------------------------------------------------------
    def to_sklearn(self, replicate: int = 0):
        """A fitted ``sklearn.mixture.GaussianMixture`` for one replicate."""
        from sklearn.mixture import GaussianMixture
        from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

        gm = GaussianMixture(self.components, covariance_type="full", reg_covar=self.params["reg_covar"],
                             max_iter=self.params["max_iter"])
        gm.weights_ = self.weights_[replicate].copy()
        gm.means_ = self.means_[replicate].copy()
        gm.covariances_ = self.covariances_[replicate].copy()
        gm.precisions_cholesky_ = _compute_precision_cholesky(gm.covariances_, "full")
        gm.precisions_ = np.einsum("kij,klj->kil", gm.precisions_cholesky_, gm.precisions_cholesky_)
        gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 0, -np.inf
        gm.n_features_in_ = self.d
        return gm

    def save_mlflow_model(self, path, model_dir):
        """``mlflow.sklearn`` (skops format: loads without unpickling) of replicate 0; all replicates' arrays go
        beside it on the run (``<name>-all-replicates``)."""
        import mlflow.sklearn

        mlflow.sklearn.save_model(self.to_sklearn(0), str(path), serialization_format="skops",
                                  pip_requirements=["scikit-learn", "skops", "numpy"])
        return {"all-replicates": Path(model_dir)}

    # -- metrics -----------------------------------------------------------------
    def evaluate(self, samples, real, reference, gen0):
        r = self.weights_.shape[0]
        truth = self._truth_stack(r)
        xt = np.broadcast_to(reference["eval_truth"], (r,) + reference["eval_truth"].shape)
        kl_tm = reference["eval_truth_logpdf"][None] - self.logpdf(xt)
        xm = push_forward(reference["eval_u"][None], reference["eval_z"][None], self.weights_, self.means_, self.covariances_)
        kl_mt = self.logpdf(xm) - mixture_logpdf(xm, *truth)
        nll = -self.logpdf(real["test"][0])
        comp_std = np.sqrt(np.trace(self.covariances_, axis1=2, axis2=3) / self.d)
        w = self.weights_
        entropy = -np.sum(np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0), axis=1)
        diff = xm - reference["truth_mean"]
        maha = np.sqrt(np.einsum("rmi,ij,rmj->rm", diff, np.linalg.inv(reference["truth_cov"]), diff))
        tail = np.mean(maha > reference["tail_radius"], axis=1) / (1 - TAIL_LEVEL)
        density, coverage = M.density_coverage(real["test"][0][:1000], xm[:, :500], k=5)
        scale = 0.1 * np.sqrt(np.trace(reference["truth_cov"]) / self.d)
        vendi = np.mean([M.vendi(M.rbf_kernel(x[:300], scale)) for x in xm])
        return {
            "kl_truth_model": float(kl_tm.mean()),
            "kl_model_truth": float(kl_mt.mean()),
            "nll_real": float(nll.mean()),
            "component_std_min": float(comp_std.min(axis=1).mean()),
            "component_std_max": float(comp_std.max(axis=1).mean()),
            "weight_entropy": float(entropy.mean()),
            "tail_mass_ratio": float(tail.mean()),
            "density": float(np.mean(density)),
            "coverage": float(np.mean(coverage)),
            "vendi": float(vendi),
        }
