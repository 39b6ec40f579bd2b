"""A distribution over K categories refit by empirical frequencies: the Wright-Fisher model of collapse.

The truth is uniform over K categories or Zipf(beta) (p_k proportional to k^-beta: the "tale of tails"
setting of Dohmatob et al. 2024).  Items are category indices shaped (R, n, 1); each generation refits
p = (counts + alpha) / (n + K alpha) (``smoothing`` alpha, 0: the MLE) and draws n items from it.  R
replicates are vectorised with numpy.  Under ``replace`` with alpha = 0 and lam = 1 this is the neutral
Wright-Fisher model: a category once lost never returns, and every replicate ends fixed on one category.

The sampling bias lam draws from p^(1/lam) renormalised (lam < 1 sharpens towards the modes).

The refit depends on the data only through the counts per category (:class:`~ouroboros.data.Counts`):
``method: counts`` draws them directly (a multinomial per replicate, R K binomials instead of R n items),
``sample`` draws the items; ``auto`` (default) uses counts wherever it is exact (no curation, no regime that
picks individual items).  Pools of the accumulate regimes are kept as counts either way.
"""
from __future__ import annotations

import functools

import numpy as np

from ouroboros.data import Counts, Data, Stats
from ouroboros.settings import settings_schema
from ouroboros.targets.base import Target
from ouroboros.targets.capabilities import ClosedForm, Curatable, ExactMethod, SufficientStatistics


def truth_probs(K: int, truth: str, beta: float) -> np.ndarray:
    if truth == "uniform":
        return np.full(K, 1.0 / K)
    w = np.arange(1, K + 1, dtype=float) ** -float(beta)
    return w / w.sum()


def tail_categories(p: np.ndarray, mass: float) -> np.ndarray:
    """The rarest categories that together hold at most ``mass`` of the probability (at least one)."""
    order = np.argsort(p, kind="stable")
    cum = np.cumsum(p[order])
    return np.sort(order[: max(1, int(np.searchsorted(cum, mass + 1e-12, side="right")))])


def counts_of(data, K: int) -> np.ndarray:
    """(R, K) category counts of items (R, n, 1), masked items or :class:`Counts`."""
    return data.c if isinstance(data, Counts) else Counts.from_items(data, K).c


class CategoricalTarget(ExactMethod, SufficientStatistics, Curatable, ClosedForm, Target):
    name = "categorical"
    headline = "support_size"
    test_settings = ({"params": {"K": 6, "method": "sample"}, "n": 12, "replicates": 30},)
    default_block = 1000
    exact_method = "counts"
    compress_models = True  # every generation's frequencies, mostly zeros once categories are lost
    curation_hooks = ("candidates", "truth_logpdf", "loglik", "features", "duplicates")
    params_schema = settings_schema({
        "K": {"stage": "data", "type": "integer", "minimum": 2, "default": 10, "description": "number of categories"},
        "truth": {"stage": "data", "enum": ["uniform", "zipf"], "default": "uniform",
                  "description": "uniform over the K categories, or Zipf: p_k proportional to k^-beta"},
        "beta": {"stage": "data", "type": "number", "minimum": 0, "default": 1.0, "description": "Zipf exponent"},
        "smoothing": {"stage": "fit", "type": "number", "minimum": 0, "default": 0.0,
                      "description": "additive smoothing alpha of the refit (0: empirical frequencies, the MLE)"},
        "tail_mass": {"stage": "evaluate", "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.1,
                      "description": "the truth's tail: its rarest categories holding this much mass"},
        "method": {"stage": "sample", "enum": ["auto", "sample", "counts"], "default": "auto",
                   "description": "draw the items, or draw their counts per category (a multinomial; exact)"},
    })
    units = {"entropy": "nats", "kl_model_truth": "nats", "tail_covered": "share", "lost_any": "share",
             "fixed": "share"}
    default_metric_data = "model"
    metrics = {
        "support_size": "categories with positive probability, mean over replicates",
        "entropy": "entropy of the fitted distribution (nats), mean over replicates",
        "heterozygosity": "1 - sum p_k^2 (the chance two draws differ), mean over replicates",
        "tv_to_truth": "total variation distance to the truth, mean over replicates",
        "kl_model_truth": "KL(model || truth) (nats), mean over replicates",
        "tail_covered": "share of the truth's tail categories (its rarest, 10% of the mass) still present",
        "lost_any": "share of replicates that have lost at least one category (the CDF of the first loss)",
        "fixed": "share of replicates left with a single category (the CDF of the fixation time)",
    }

    def __init__(self, K=10, truth="uniform", beta=1.0, smoothing=0.0, tail_mass=0.1, method="auto"):
        super().__init__(K=K, truth=truth, beta=beta, smoothing=smoothing, tail_mass=tail_mass, method=method)
        self.K, self.alpha, self.method = int(K), float(smoothing), method
        self.curation_picks_items = False

    @functools.cached_property
    def truth_p(self) -> np.ndarray:
        """The truth's probabilities (K,), made on first use: checking a study's settings allocates nothing."""
        return truth_probs(self.K, self.params["truth"], self.params["beta"])

    def summarize(self, points):
        return Counts.from_items(points, self.K)

    # -- data --------------------------------------------------------------------
    def _draw(self, rng, p: np.ndarray, n: int) -> np.ndarray:
        """n items from each row of p (R, K), shaped (R, n, 1): inverse CDF on one sorted axis."""
        r = p.shape[0]
        cdf = np.cumsum(p, axis=1)
        cdf /= cdf[:, -1:]
        u = rng.random((r, n))
        offset = np.arange(r)[:, None]
        idx = np.searchsorted((cdf + offset).ravel(), (u + offset).ravel(), side="right").reshape(r, n)
        return np.minimum(idx - self.K * offset, self.K - 1)[..., None]

    def real_data(self, rng, n, replicates):
        truth = np.broadcast_to(self.truth_p, (replicates, self.K))
        return {"train": self._draw(rng, truth, n), "test": self._draw(rng, truth[:1], 1000)}

    def draw_real(self, rng, m, replicates):
        return self._draw(rng, np.broadcast_to(self.truth_p, (replicates, self.K)), m)

    # -- model -------------------------------------------------------------------
    def fit(self, data: Data, rng=None) -> "CategoricalTarget":
        if isinstance(data, Stats):
            raise TypeError("the categorical target fits items (category indices), not Gaussian statistics")
        c = counts_of(data, self.K) + self.alpha
        self.p_ = c / c.sum(axis=1, keepdims=True)
        return self

    def sample(self, n, lam, rng):
        p = self.p_ if lam == 1 else _sharpen(self.p_, lam)
        if self.method == "counts":
            return Counts(rng.multinomial(n, p).astype(float))
        return self._draw(rng, p, n)

    def item_bytes(self):
        return 8

    def model_bytes(self):
        return 8 * self.K

    def get_state(self):
        return {"p": self.p_}

    def set_state(self, state):
        self.p_ = np.asarray(state["p"], float)
        return self

    # -- curation hooks ------------------------------------------------------------------
    def truth_logpdf(self, items):
        with np.errstate(divide="ignore"):
            return np.log(self.truth_p)[np.asarray(items, dtype=np.int64)[..., 0]]

    def loglik(self, items):
        x = np.asarray(items, dtype=np.int64)[..., 0]
        with np.errstate(divide="ignore"):
            return np.log(np.take_along_axis(self.p_, x, axis=1))

    def feature_dim(self):
        return 1

    def duplicates_on_counts(self, settings):
        """Items are category indices: within a tolerance below 1 two are duplicates exactly when equal."""
        return settings["tolerance"] < 1

    # -- metrics -----------------------------------------------------------------
    def evaluate(self, samples, real, reference, gen0):
        p, q = self.p_, self.truth_p[None]
        pos = p > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(pos, p * np.log(np.where(pos, p, 1.0)), 0.0)
            kl = np.sum(np.where(pos, p * (np.log(np.where(pos, p, 1.0)) - np.log(q)), 0.0), axis=1)
        support = pos.sum(axis=1)
        tail = tail_categories(self.truth_p, self.params["tail_mass"])
        return {
            "support_size": float(support.mean()),
            "entropy": float(-plogp.sum(axis=1).mean()) + 0.0,
            "heterozygosity": float((1 - np.sum(p * p, axis=1)).mean()),
            "tv_to_truth": float((0.5 * np.abs(p - q).sum(axis=1)).mean()),
            "kl_model_truth": float(kl.mean()),
            "tail_covered": float(pos[:, tail].mean()),
            "lost_any": float((support < (self.truth_p > 0).sum()).mean()),
            "fixed": float((support == 1).mean()),
        }

    # -- theory ------------------------------------------------------------------
    def closed_form(self, metric, generations, regime, n, lam, curation=None):
        """Neutral Wright-Fisher (replace, lam = 1, no smoothing, no curation): every refit keeps the expected
        heterozygosity times (1 - 1/n), and generation 0 is itself a refit of n real draws, so
        E[H_t] = H_truth (1 - 1/n)^(t + 1)."""
        if (not regime.fully_synthetic(n) or lam != 1 or self.alpha or curation) or metric != "heterozygosity":
            return None
        t = np.asarray(generations, dtype=float)
        return (1 - np.sum(self.truth_p ** 2)) * (1 - 1 / n) ** (t + 1)


    def expected_time(self, metric, regime, n, lam, curation=None):
        """Mean generation of fixation (``fixed``) under neutral Wright-Fisher (replace, lam = 1, no smoothing,
        no curation): exact for two categories (:func:`fixation_time_two_categories`), else the diffusion
        approximation (:func:`fixation_time_diffusion`) from the truth's frequencies."""
        if metric != "fixed" or not regime.fully_synthetic(n) or lam != 1 or self.alpha or curation:
            return None
        support = self.truth_p[self.truth_p > 0]
        if support.size == 2 and n <= 3000:
            return fixation_time_two_categories(n, float(support[0]))
        return fixation_time_diffusion(n, support)


def _sharpen(p: np.ndarray, lam: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        logp = np.log(p) / lam
    w = np.exp(logp - logp.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def fixation_time_two_categories(n: int, p_truth: float) -> float:
    """Exact mean generation of fixation for K = 2 under replace: generation 0 counts i ~ Binomial(n, p), then
    counts move as a Wright-Fisher Markov chain i -> Binomial(n, i / n); E[T] = sum_i P(i) tau_i with
    (I - Q) tau = 1 on the transient states 1..n-1 (tau = 0 when generation 0 is already fixed)."""
    from scipy.stats import binom

    i = np.arange(1, n)
    Q = binom.pmf(i[None, :], n, (i / n)[:, None])  # transient -> transient
    tau = np.linalg.solve(np.eye(n - 1) - Q, np.ones(n - 1))
    return float(np.sum(binom.pmf(i, n, p_truth) * tau))


def fixation_time_diffusion(n: int, x: np.ndarray) -> float:
    """The diffusion approximation of the mean time until one category is left: -2 n sum (1 - x_i) ln(1 - x_i)."""
    x = np.asarray(x, dtype=float)
    x = x[(x > 0) & (x < 1)]
    return float(-2 * n * np.sum((1 - x) * np.log(1 - x)))
