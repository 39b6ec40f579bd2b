"""The diffusion target's two kinds of data behind one interface (:class:`DataKind`).

* :class:`Images` (``data: digits | mnist | fashion-mnist``): the VAE target's real data, judge and metrics
  (:mod:`ouroboros.judge`); pixels in [0, 1] are modelled as 2x - 1 by a small ``UNet2DModel``;
* :class:`Points` (``data: gmm``): d-dimensional points from a known Gaussian mixture (the GMM target's truth,
  real data and metrics, the latter computed on a mixture fitted to the samples), standardised with the
  training set's mean and std (kept with the model) for an MLP noise predictor.

A kind says what the real data, the reference and the metrics are, which network models the items and how
items map to the network's space and back, and what the curation hooks see.  The target
(:class:`~ouroboros.targets.diffusion.DiffusionTarget`) holds one, made by :func:`make_data_kind` from the
``data`` setting; it never asks which.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np

from ouroboros import data as D
from ouroboros import images
from ouroboros import judge as J
from ouroboros import metrics as M
from ouroboros.targets.gmm import GMMTarget, mixture_from_spec

EVAL_SEED = 20240307  # the mixture fitted to the samples (points): every generation alike

#: every metric a kind can report beside ``denoise_real``
POINT_METRICS = {
    "kl_truth_model": "KL(truth || mixture fitted to the samples), Monte Carlo (gmm)",
    "kl_model_truth": "KL(mixture fitted to the samples || truth), Monte Carlo (gmm)",
    "nll_real": "NLL per point of real test points under the mixture fitted to the samples (gmm)",
    "truth_nll_samples": "minus the truth's log-density of the samples, mean (gmm; lower: higher quality)",
    "tail_mass_ratio": "share of samples beyond the truth's 99th-percentile Mahalanobis radius, over 1% (gmm)",
    "sample_std": "std of the samples (sqrt(trace(cov) / d)) over the truth's (gmm)",
    "point_precision": "k-NN (k = 5) precision of the samples against real test points (gmm)",
    "point_recall": "k-NN (k = 5) recall of the samples against real test points (gmm)",
    "point_density": "density of the samples against real test points (Naeem et al. 2020, k = 5; gmm)",
    "point_coverage": "coverage of real test points by the samples (Naeem et al. 2020, k = 5; gmm)",
    "point_vendi": "Vendi score of the samples, Gaussian kernel of scale 0.1 x the truth's std: their effective "
                   "number of distinct points (gmm)",
}


class DataKind(abc.ABC):
    """What the diffusion target's items are (see the module docstring); ``p``: the target's settings."""

    #: the ``data`` settings this kind serves
    names: ClassVar[tuple[str, ...]]
    #: metric name -> description (beside ``denoise_real``)
    metrics: ClassVar[dict[str, str]]
    #: the curation hooks the target offers on this kind
    curation_hooks: ClassVar[tuple[str, ...]]
    #: whether the scheduler clips its x0 prediction to [-1, 1] (images live there)
    clip_sample: ClassVar[bool] = False

    def __init__(self, p: dict):
        self.p = p

    # -- shape ---------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def d(self) -> int:
        """Numbers per item."""

    @property
    @abc.abstractmethod
    def item_shape(self) -> tuple[int, ...]:
        """One item's shape in the network's space."""

    @property
    def image_shape(self) -> Optional[tuple[int, int]]:
        return None

    @abc.abstractmethod
    def item_bytes(self) -> int:
        """Bytes of one item in memory."""

    @abc.abstractmethod
    def empty(self) -> np.ndarray:
        """No samples, (1, 0, d), in the dtype samples have."""

    # -- real data and the reference ----------------------------------------------------------
    @abc.abstractmethod
    def check(self, n: int) -> Optional[str]:
        """A message if n real training items cannot be had or the settings do not fit the data."""

    @abc.abstractmethod
    def real_data(self, rng, n: int, replicates: int) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def draw_real(self, rng, m: int, replicates: int) -> np.ndarray: ...

    @abc.abstractmethod
    def reference(self, rng) -> dict[str, np.ndarray]: ...

    # -- the network's space ---------------------------------------------------------------------
    @abc.abstractmethod
    def new_net(self):
        """An untrained noise predictor for these items."""

    def normalisation(self, x: np.ndarray, previous: Optional[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) of the items in the network's space (``previous``: generation t - 1's, when the fit
        starts from its network)."""
        return np.zeros(1), np.ones(1)

    @abc.abstractmethod
    def to_model(self, x: np.ndarray, shift, scale):
        """Items (N, d) -> the network's space (a float32 tensor (N, *item_shape))."""

    @abc.abstractmethod
    def from_model(self, z, shift, scale) -> np.ndarray:
        """The network's space (a CPU tensor) -> items (N, d)."""

    # -- metrics ---------------------------------------------------------------------------------
    def min_eval_items(self) -> int:
        return 0

    @abc.abstractmethod
    def score(self, x_gen: np.ndarray, real: dict, reference: dict) -> dict[str, float]:
        """The kind's metrics of the samples (N, d)."""

    def eval_work(self, n: int) -> float:
        """Work of scoring n samples, in items through the network."""
        return float(min(n, self.p["eval_max"]))

    # -- curation hooks and artifacts -------------------------------------------------------------
    @abc.abstractmethod
    def duplicates(self, x: np.ndarray, settings: dict, reference: dict) -> np.ndarray: ...

    @abc.abstractmethod
    def centres(self, k: int, reference: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centres in item space (C, d), their features (C, f), their classes (C,)) self-correction moves to."""

    @abc.abstractmethod
    def features_and_classes(self, x: np.ndarray, reference: dict) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, f), classes (N,)) of items, as :meth:`centres` describes the centres."""

    def write_sample_artifacts(self, samples, directory: Path) -> None:
        pass

    def sample_artifacts(self, samples_dir: Path) -> list[Path]:
        return []


class Images(DataKind):
    names = ("digits", "mnist", "fashion-mnist")
    metrics = dict(J.METRICS)
    curation_hooks = ("candidates", "loglik", "features", "judge_score", "duplicates", "correct")
    clip_sample = True

    @property
    def side(self) -> int:
        return 8 if self.p["data"] == "digits" else 28

    @property
    def d(self) -> int:
        return self.side * self.side

    @property
    def item_shape(self):
        return (1, self.side, self.side)

    @property
    def image_shape(self):
        return (self.side, self.side)

    def item_bytes(self) -> int:
        return 4 * self.d

    def empty(self):
        return np.zeros((1, 0, self.d), np.float32)

    def pool(self):
        x, y = images.load(self.p["data"], self.p["root"], self.p["split"], self.p["download"])
        return images.split(x, y, self.p["test_fraction"], self.p["split_seed"])

    def check(self, n):
        p = self.p
        levels = len(p["channels"])
        if self.side % 2 ** (levels - 1):
            return (f"params.channels: a UNet of {levels} resolutions halves the image {levels - 1} times; "
                    f"{p['data']}'s side {self.side} is not divisible by {2 ** (levels - 1)}")
        bad = [c for c in p["channels"] if c % p["norm_groups"]]
        if bad:
            return f"params.channels {bad} are not multiples of params.norm_groups={p['norm_groups']}"
        try:
            x_train, *_ = self.pool()
        except images.DataError as e:
            return str(e)
        if n > len(x_train):
            return f"n={n} exceeds the {len(x_train)} real training images of {p['data']}"
        return None

    def real_data(self, rng, n, replicates):
        x_train, y_train, x_test, y_test = self.pool()
        idx = np.sort(rng.choice(len(x_train), size=n, replace=False))
        return {"train": x_train[idx][None], "train_labels": y_train[idx][None], "test": x_test[None],
                "test_labels": y_test[None]}

    def draw_real(self, rng, m, replicates):
        x_train, *_ = self.pool()
        return x_train[rng.choice(len(x_train), size=m, replace=False)][None]

    def reference(self, rng):
        """The judge, trained on the real training split."""
        x_train, y_train, x_test, y_test = self.pool()
        return J.judge_reference(x_train, y_train, x_test, y_test, rng, self.p["judge_epochs"])

    def new_net(self):
        from ouroboros.nets import diffusion as N

        p = self.p
        return N.ImageDenoiser(N.UNetConfig(self.side, tuple(p["channels"]), p["layers_per_block"], p["norm_groups"]))

    def to_model(self, x, shift, scale):
        import torch

        return torch.as_tensor(2 * np.asarray(x).astype(np.float32) - 1).reshape(-1, *self.item_shape)

    def from_model(self, z, shift, scale):
        z = z.double().numpy()
        return np.clip((z.reshape(len(z), -1) + 1) / 2, 0, 1).astype(np.float32)

    def score(self, x_gen, real, reference):
        return J.judge_metrics(x_gen, reference, self.p["eval_max"])

    def duplicates(self, x, settings, reference):
        """Near duplicates in the judge's feature space (``tolerance``; 0: identical images)."""
        if settings["tolerance"] > 0:
            x = J.judge_features(x, reference)
        return D.near_duplicates(x[None], settings["tolerance"])

    def centres(self, k, reference):
        """k k-means centres per class of the real training images in the judge's feature space (each centre the
        mean image of its cluster)."""
        from sklearn.cluster import KMeans

        x_train, y_train, *_ = self.pool()
        feats = J.judge_features(x_train, reference)
        centres, cfeats, classes = [], [], []
        for c in np.unique(y_train):
            xc, fc = x_train[y_train == c], feats[y_train == c]
            km = KMeans(min(k, len(xc)), n_init=1, random_state=0).fit(fc)
            for j in range(km.n_clusters):
                members = km.labels_ == j
                centres.append(xc[members].mean(axis=0))
                cfeats.append(km.cluster_centers_[j])
                classes.append(c)
        return np.asarray(centres, np.float32), np.asarray(cfeats), np.asarray(classes)

    def features_and_classes(self, x, reference):
        """Judge features, and the class the judge gives each image."""
        feats, probs = J.judge_from(reference).apply_to(x)
        return feats, probs.argmax(axis=1)

    def write_sample_artifacts(self, samples, directory):
        """A grid of the first 64 samples."""
        images.write_grid(samples, self.side, directory)

    def sample_artifacts(self, samples_dir):
        return images.grid_files(samples_dir)


class Points(DataKind):
    names = ("gmm",)
    metrics = POINT_METRICS
    curation_hooks = ("candidates", "truth_logpdf", "loglik", "features", "duplicates", "correct")

    def __init__(self, p: dict):
        super().__init__(p)
        self.truth_w, self.truth_mu, self.truth_cov = mixture_from_spec(p["truth"])

    @property
    def d(self) -> int:
        return int(self.truth_mu.shape[1])

    @property
    def item_shape(self):
        return (self.d,)

    def item_bytes(self) -> int:
        return 8 * self.d

    def empty(self):
        return np.zeros((1, 0, self.d), float)

    def mixture(self) -> GMMTarget:
        """The GMM target of this truth: its real data, reference and metrics (fitted to samples)."""
        return GMMTarget(components=len(self.truth_w), truth=self.p["truth"], eval_size=self.p["eval_size"],
                         test_size=self.p["test_size"])

    def check(self, n):
        return None

    def real_data(self, rng, n, replicates):
        return self.mixture().real_data(rng, n, replicates)

    def draw_real(self, rng, m, replicates):
        return self.mixture().draw_real(rng, m, replicates)

    def reference(self, rng):
        """The GMM target's fixed truth sample and tail radius."""
        return self.mixture().reference(rng)

    def new_net(self):
        from ouroboros.nets import diffusion as N

        return N.PointDenoiser(N.MLPConfig(self.d, self.p["hidden"], self.p["depth"]))

    def normalisation(self, x, previous):
        """The training set's mean and std (generation t - 1's when the fit starts from its network)."""
        if previous is not None:
            return previous
        x = np.asarray(x, float)
        return x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)

    def to_model(self, x, shift, scale):
        import torch

        return torch.as_tensor(((np.asarray(x) - shift) / scale).astype(np.float32))

    def from_model(self, z, shift, scale):
        return z.double().numpy() * scale + shift

    def min_eval_items(self):
        """The mixture metrics are fitted to the samples (5 x (d + d(d+1)/2) numbers for the truth's
        components), so they need ``eval_samples`` of them whatever the regime draws."""
        return int(self.p["eval_samples"])

    def eval_work(self, n):
        return float(4 * min(n, self.p["eval_max"]))

    def truth_logpdf(self, items):
        return self.mixture().truth_logpdf(items)

    def score(self, x_gen, real, reference):
        mixture = self.mixture()
        if len(x_gen) < max(6, mixture.components):
            return {k: float("nan") for k in self.metrics}
        fitted = mixture.fit(x_gen[None].astype(float), np.random.default_rng(EVAL_SEED))
        scores = fitted.evaluate(x_gen[None], real, reference, fitted)
        cov = np.atleast_2d(np.cov(x_gen.T))
        diff = x_gen - reference["truth_mean"]
        maha = np.sqrt(np.einsum("mi,ij,mj->m", diff, np.linalg.inv(reference["truth_cov"]), diff))
        cap = self.p["eval_max"]
        precision, recall = M.precision_recall(real["test"][0][:cap], x_gen[:cap], k=5)
        density, coverage = M.density_coverage(real["test"][0][:cap], x_gen[:cap], k=5)
        scale = 0.1 * np.sqrt(np.trace(reference["truth_cov"]) / len(reference["truth_cov"]))
        vendi = M.vendi(M.rbf_kernel(x_gen[:cap], scale))
        return {"kl_truth_model": scores["kl_truth_model"], "kl_model_truth": scores["kl_model_truth"],
                "nll_real": scores["nll_real"],
                "truth_nll_samples": float(-self.truth_logpdf(x_gen[None]).mean()),
                "tail_mass_ratio": float(np.mean(maha > reference["tail_radius"]) / 0.01),
                "sample_std": float(np.sqrt(np.trace(cov) / np.trace(reference["truth_cov"]))),
                "point_precision": precision, "point_recall": recall, "point_density": density,
                "point_coverage": coverage, "point_vendi": vendi}

    def duplicates(self, x, settings, reference):
        """The default Euclidean test."""
        return D.near_duplicates(np.asarray(x)[None], settings["tolerance"])

    def centres(self, k, reference):
        """k k-means centres of the truth sample of the reference."""
        from sklearn.cluster import KMeans

        pts = np.asarray(reference["eval_truth"], float)
        km = KMeans(k, n_init=1, random_state=0).fit(pts)
        return km.cluster_centers_, km.cluster_centers_, np.zeros(k, int)

    def features_and_classes(self, x, reference):
        return np.asarray(x, float), np.zeros(len(x), int)


#: the ``data`` setting -> its kind
KINDS: dict[str, type[DataKind]] = {name: kind for kind in (Images, Points) for name in kind.names}


def make_data_kind(p: dict) -> DataKind:
    return KINDS[p["data"]](p)
