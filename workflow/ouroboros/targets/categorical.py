"""A distribution over K categories refit by empirical frequencies: the Wright-Fisher model of collapse.

The truth is uniform over K categories or Zipf(beta) (p_k proportional to k^-beta: the "tale of tails"
setting of Dohmatob et al. 2024).  Items are category indices shaped (R, n, 1); each generation refits
p = (counts + alpha) / (n + K alpha) (``smoothing`` alpha, 0: the MLE) and draws n items from it.  R
replicates are vectorised with numpy.  Under ``replace`` with alpha = 0 and lam = 1 this is the neutral
Wright-Fisher model: a category once lost never returns, and every replicate ends fixed on one category.

The sampling bias lam draws from p^(1/lam) renormalised (lam < 1 sharpens towards the modes); ``top_k``
draws from the model's k most probable categories only, renormalised (the decoding of LLMs that cuts the
tail: Dohmatob et al., "A Tale of Tails", ICML 2024).

The real data may come from another distribution than the truth the metrics score against: ``source_beta``
(a generator's steeper Zipf exponent: the tail-narrowing variant) and ``source_top_k`` (a generator that cut
the truth at its k most probable categories).  Then generation 0 is the "Hutter" memorising learner trained
on T = n items of AI-generated data, and ``missing_mass`` (the truth's mass on the categories it never saw,
its test error) has the closed form sum_i p_i (1 - q_i)^T, q the generator (:meth:`closed_form`).

The refit depends on the data only through the counts per category (:class:`~ouroboros.data.Counts`):
``method: counts`` draws them directly (a multinomial per replicate, R K binomials instead of R n items),
``sample`` draws the items; ``auto`` (default) uses counts wherever it is exact (no curation, no regime that
picks individual items).  Pools of the accumulate regimes are kept as counts either way.
"""
from __future__ import annotations

import functools

import numpy as np

from ouroboros import data as D
from ouroboros.data import Counts, Data, Stats
from ouroboros.settings import settings_schema
from ouroboros.targets.base import Target
from ouroboros.targets.capabilities import ClosedForm, Curatable, ExactMethod, SufficientStatistics


def truth_probs(K: int, truth: str, beta: float) -> np.ndarray:
    if truth == "uniform":
        return np.full(K, 1.0 / K)
    w = np.arange(1, K + 1, dtype=float) ** -float(beta)
    return w / w.sum()


def source_probs(K: int, truth: str, beta: float, source_beta, source_top_k: int) -> np.ndarray:
    """The distribution the real data are drawn from: the truth, or a Zipf(source_beta) generator, cut at its
    ``source_top_k`` most probable categories (0: uncut) and renormalised."""
    q = truth_probs(K, "zipf" if source_beta is not None else truth,
                    beta if source_beta is None else source_beta)
    return top_k_cut(q[None], int(source_top_k))[0]


def top_k_cut(p: np.ndarray, k: int) -> np.ndarray:
    """Each row of p (R, K) kept on its k most probable categories (ties: the lower index first) and
    renormalised; k = 0 or k >= K: p itself."""
    if not k or k >= p.shape[1]:
        return p
    keep = np.argsort(-p, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(p)
    rows = np.arange(p.shape[0])[:, None]
    out[rows, keep] = p[rows, keep]
    return out / out.sum(axis=1, keepdims=True)


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
        "source_beta": {"stage": "data", "type": ["number", "null"], "minimum": 0, "default": None,
                        "description": "the real data come from Zipf(source_beta) instead of the truth (a generator "
                                       "with a narrower tail); null: from the truth"},
        "source_top_k": {"stage": "data", "type": "integer", "minimum": 0, "default": 0,
                         "description": "the real data come from their source cut at its k most probable categories "
                                        "(AI data decoded with top-k); 0: uncut"},
        "smoothing": {"stage": "fit", "type": "number", "minimum": 0, "default": 0.0,
                      "description": "additive smoothing alpha of the refit (0: empirical frequencies, the MLE)"},
        "tail_mass": {"stage": "evaluate", "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.1,
                      "description": "the truth's tail: its rarest categories holding this much mass"},
        "top_k": {"stage": "sample", "type": "integer", "minimum": 0, "default": 0,
                  "description": "every generation samples from its model's k most probable categories only "
                                 "(renormalised; ties: the lower index first); 0: all"},
        "method": {"stage": "sample", "enum": ["auto", "sample", "counts"], "default": "auto",
                   "description": "draw the items, or draw their counts per category (a multinomial; exact)"},
    })
    units = {"entropy": "nats", "kl_model_truth": "nats", "tail_covered": "share", "lost_any": "share",
             "fixed": "share", "missing_mass": "share"}
    default_metric_data = "model"
    metrics = {
        "support_size": "categories with positive probability, mean over replicates",
        "entropy": "entropy of the fitted distribution (nats), mean over replicates",
        "heterozygosity": "1 - sum p_k^2 (the chance two draws differ), mean over replicates",
        "collision": "sum p_k^2, the collision probability (the chance two draws agree; Seddik et al. 2024), mean "
                     "over replicates",
        "sq_error": "sum (p_k - truth_k)^2, the squared error of the fitted probabilities, mean over replicates",
        "missing_mass": "the truth's mass on categories the model gives probability 0 (a memorising learner's test "
                        "error, Dohmatob et al. 2024), mean over replicates",
        "tv_to_truth": "total variation distance to the truth, mean over replicates",
        "kl_model_truth": "KL(model || truth) (nats), mean over replicates",
        "tail_covered": "share of the truth's tail categories (its rarest, 10% of the mass) still present",
        "lost_any": "share of replicates that have lost at least one category (the CDF of the first loss)",
        "fixed": "share of replicates left with a single category (the CDF of the fixation time)",
    }

    def __init__(self, K=10, truth="uniform", beta=1.0, source_beta=None, source_top_k=0, smoothing=0.0,
                 tail_mass=0.1, top_k=0, method="auto"):
        super().__init__(K=K, truth=truth, beta=beta, source_beta=source_beta, source_top_k=source_top_k,
                         smoothing=smoothing, tail_mass=tail_mass, top_k=top_k, method=method)
        self.K, self.alpha, self.method = int(K), float(smoothing), method
        self.top_k = int(top_k) if int(top_k) < self.K else 0
        self.curation_picks_items = False

    @functools.cached_property
    def truth_p(self) -> np.ndarray:
        """The truth's probabilities (K,), made on first use: checking a study's settings allocates nothing."""
        return truth_probs(self.K, self.params["truth"], self.params["beta"])

    @functools.cached_property
    def source_p(self) -> np.ndarray:
        """The distribution the real data are drawn from (:func:`source_probs`; the truth unless a source is set)."""
        if self.params["source_beta"] is None and not self.params["source_top_k"]:
            return self.truth_p
        return source_probs(self.K, self.params["truth"], self.params["beta"], self.params["source_beta"],
                            self.params["source_top_k"])

    def summarize(self, points):
        return Counts.from_items(points, self.K)

    # -- data --------------------------------------------------------------------
    def _draw(self, rng, p: np.ndarray, n: int) -> np.ndarray:
        """n items from each row of p (R, K), shaped (R, n, 1)."""
        return D.draw_indices(rng, p, n)[..., None]

    def real_data(self, rng, n, replicates):
        source = np.broadcast_to(self.source_p, (replicates, self.K))
        truth = self.truth_p[None]
        return {"train": self._draw(rng, source, n), "test": self._draw(rng, truth, 1000)}

    def draw_real(self, rng, m, replicates):
        return self._draw(rng, np.broadcast_to(self.source_p, (replicates, self.K)), m)

    # -- model -------------------------------------------------------------------
    def fit(self, data: Data, rng=None) -> "CategoricalTarget":
        if isinstance(data, Stats):
            raise TypeError("the categorical target fits items (category indices), not Gaussian statistics")
        c = counts_of(data, self.K) + self.alpha
        self.p_ = c / c.sum(axis=1, keepdims=True)
        return self

    def sample(self, n, lam, rng):
        p = top_k_cut(self.p_ if lam == 1 else _sharpen(self.p_, lam), self.top_k)
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
        collision = np.sum(p * p, axis=1)
        return {
            "support_size": float(support.mean()),
            "entropy": float(-plogp.sum(axis=1).mean()) + 0.0,
            "heterozygosity": float((1 - collision).mean()),
            "collision": float(collision.mean()),
            "sq_error": float(np.sum((p - q) ** 2, axis=1).mean()),
            "missing_mass": float(np.sum(np.where(pos, 0.0, q), axis=1).mean()),
            "tv_to_truth": float((0.5 * np.abs(p - q).sum(axis=1)).mean()),
            "kl_model_truth": float(kl.mean()),
            "tail_covered": float(pos[:, tail].mean()),
            "lost_any": float((support < (self.truth_p > 0).sum()).mean()),
            "fixed": float((support == 1).mean()),
        }

    # -- theory ------------------------------------------------------------------
    def closed_form(self, metric, generations, regime, n, lam, curation=None):
        """Expectations of the refit by empirical frequencies (no smoothing, no curation), q the source of the
        real data (the truth unless ``source_beta``/``source_top_k`` set one), p the truth:

        * ``missing_mass`` at generation 0 (a memoriser trained on T = n items of q; Dohmatob et al. 2024):
          sum_i p_i (1 - q_i)^n; later generations have none here (NaN).
        * ``collision`` S_t = E sum p_t^2, and from it ``heterozygosity`` 1 - S_t and ``sq_error``
          S_t - 2 <p, q> + ||p||^2 (E p_t = q at every generation: the refit is a martingale), with lam = 1 and no
          top-k cut: S_0 = ||q||^2 + (1 - ||q||^2) / n, then
          - a loop reading S_{t-1} only, with fresh real data or none (replace; ``mix`` with ``fresh``, the real
            part weighing w of the refit, n_r real and n_s synthetic items; Seddik et al. 2024's collision
            probability): S_t = w^2 (||q||^2 + (1 - ||q||^2) / n_r) + (1 - w)^2 (S_{t-1} + (1 - S_{t-1}) / n_s)
            + 2 w (1 - w) ||q||^2; under replace 1 - S_t = (1 - S_0)(1 - 1/n)^t, the neutral Wright-Fisher decay;
          - ``accumulate`` (the pool of every generation's n items; Dey and Donoho 2024): folding S_{t-1} in
            moves p by eta / (t + 1), E||eta||^2 = (1 - S_{t-1}) / n, so S_t = S_{t-1} + (1 - S_{t-1}) / (n (t + 1)^2):
            the risk sq_error_t stays below sum 1/j^2 < pi^2/6 times generation 0's, where replacing grows it.
        """
        if self.alpha or curation:
            return None
        t = np.asarray(generations, dtype=int)
        p, q = self.truth_p, self.source_p
        if metric == "missing_mass":
            gen0 = float(np.sum(p * (1.0 - q) ** n))
            return np.where(t == 0, gen0, np.nan)
        if metric not in ("collision", "heterozygosity", "sq_error") or lam != 1 or self.top_k:
            return None
        S = collision_recursion(regime, n, float(np.sum(q * q)), int(t.max()) if t.size else 0)
        if S is None:
            return None
        S = S[t]
        if metric == "collision":
            return S
        if metric == "heterozygosity":
            return 1.0 - S
        return S - 2 * float(np.sum(p * q)) + float(np.sum(p * p))

    def expected_time(self, metric, regime, n, lam, curation=None):
        """Mean generation of fixation (``fixed``) under neutral Wright-Fisher (replace, lam = 1, no smoothing,
        no curation, no top-k cut): exact for two categories (:func:`fixation_time_two_categories`), else the
        diffusion approximation (:func:`fixation_time_diffusion`) from the real data's frequencies."""
        if metric != "fixed" or not regime.fully_synthetic(n) or lam != 1 or self.alpha or curation or self.top_k:
            return None
        support = self.source_p[self.source_p > 0]
        if support.size == 2 and n <= 3000:
            return fixation_time_two_categories(n, float(support[0]))
        return fixation_time_diffusion(n, support)


def collision_recursion(regime, n: int, q2: float, G: int):
    """E sum p_t^2 for t = 0..G (see :meth:`CategoricalTarget.closed_form`; q2 = ||q||^2 of the real data's
    source), or None for a regime without it (a reused real set, a random subset of it, windows, subsampling)."""
    S = np.empty(G + 1)
    S[0] = q2 + (1 - q2) / n
    if regime.pools and not regime.needs_points and regime.n_synthetic(n) == n:  # accumulate
        for t in range(1, G + 1):
            S[t] = S[t - 1] + (1 - S[t - 1]) / (n * (t + 1) ** 2)
        return S
    nr, ns = regime.n_real(n), regime.n_synthetic(n)
    if not regime.markov or (nr and not regime.fresh_real) or ns == 0:
        return None
    w = regime.weights(n)[0]
    real = q2 + (1 - q2) / nr if nr else 0.0
    for t in range(1, G + 1):
        S[t] = w * w * real + (1 - w) ** 2 * (S[t - 1] + (1 - S[t - 1]) / ns) + 2 * w * (1 - w) * q2
    return S


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
