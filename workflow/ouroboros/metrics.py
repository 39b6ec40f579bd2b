"""Sample-quality metrics on feature vectors (numpy only).

* :func:`frechet_distance` between Gaussians fitted to two feature sets
  (the FID formula, here on any feature extractor).
* :func:`precision_recall`: k-nearest-neighbour manifold precision and recall
  (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models", NeurIPS 2019).  Each set's manifold is the union of balls
  around its points with radius the distance to the k-th nearest neighbour in
  the same set; precision is the share of generated points inside the real
  manifold, recall the share of real points inside the generated manifold.
* :func:`mean_pairwise_distance` and :func:`class_histogram_stats`.
"""
from __future__ import annotations

import warnings

import numpy as np


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(d2, 0.0, None))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """||mu_x - mu_y||^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2))."""
    from scipy import linalg

    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # collapsed samples give singular covariances
        covmean = linalg.sqrtm(sx @ sy)
        if not np.isfinite(covmean).all():
            eps = 1e-6 * np.eye(sx.shape[0])
            covmean = linalg.sqrtm((sx + eps) @ (sy + eps))
    covmean = np.real(covmean)
    return float(np.sum((mx - my) ** 2) + np.trace(sx) + np.trace(sy) - 2.0 * np.trace(covmean))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} points, got {len(x)}")
    d = _pairwise(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """(precision, recall) of ``fake`` against ``real`` with k-NN manifolds."""
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    d = _pairwise(fake, real)  # (n_fake, n_real)
    precision = float(np.mean((d <= r_real[None, :]).any(axis=1)))
    recall = float(np.mean((d.T <= r_fake[None, :]).any(axis=1)))
    return precision, recall


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of distinct rows."""
    n = len(x)
    if n < 2:
        return 0.0
    d = _pairwise(x, x)
    return float(d.sum() / (n * (n - 1)))


def class_histogram_stats(pred: np.ndarray, reference_hist: np.ndarray, classes: int) -> tuple[float, float]:
    """(entropy of the predicted class histogram, KL(generated || reference)), in nats."""
    p = np.bincount(pred, minlength=classes).astype(float)
    p /= p.sum()
    q = np.clip(np.asarray(reference_hist, dtype=float), 1e-12, None)
    q /= q.sum()
    nz = p > 0
    entropy = float(-(p[nz] * np.log(p[nz])).sum()) + 0.0  # no -0.0
    kl = float((p[nz] * np.log(p[nz] / q[nz])).sum())
    return entropy, kl
