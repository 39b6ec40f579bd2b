"""Sample-quality metrics on feature vectors (numpy only).

* :func:`frechet_distance` between Gaussians fitted to two feature sets
  (the FID formula, here on any feature extractor).
* :func:`precision_recall`: k-nearest-neighbour manifold precision and recall
  (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models", NeurIPS 2019).  Each set's manifold is the union of balls
  around its points with radius the distance to the k-th nearest neighbour in
  the same set; precision is the share of generated points inside the real
  manifold, recall the share of real points inside the generated manifold.
* :func:`density_coverage`: density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for
  Generative Models", ICML 2020), as the authors' ``prdc`` package defines them: density counts how many real k-NN balls
  hold each generated point (divided by k; 1 when the two match, above 1 when samples crowd the real modes),
  coverage is the share of real points whose ball holds a generated point.
* :func:`vendi` (Friedman and Dieng, "The Vendi Score", TMLR 2023), by the ``vendi-score`` package: the
  exponential of the entropy of the eigenvalues of K / N for a similarity kernel K with K_ii = 1, the
  "effective number of distinct items" (1 when all are alike, N when all differ); :func:`rbf_kernel` for
  points, cosine similarity of features (:func:`cosine_kernel`) for images in a judge's feature space and of
  n-gram counts for text (:func:`ngram_kernel`).
* :func:`self_bleu` (Zhu et al., "Texygen", 2018), by ``nltk``'s BLEU: the mean BLEU-4 of each sample against
  the others as references (high: the samples repeat one another).
* :func:`mean_pairwise_distance` and :func:`class_histogram_stats`.
"""
from __future__ import annotations

import warnings
from collections import Counter

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


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(density, coverage) of generated points against real ones with k-NN balls around the real points.

    ``real`` (m, d); ``fake`` (n, d) or replicates (R, n, d), each scored on its own (then arrays (R,)).  The
    definitions of Naeem et al.'s ``prdc`` package (strict inequalities; ``tests/test_metrics.py`` holds this
    to it), vectorised over replicates: prdc's one call per set costs 0.15 s on these cores."""
    real = np.asarray(real, dtype=np.float64).reshape(len(real), -1)
    fake = np.asarray(fake, dtype=np.float64)
    single = fake.ndim == 2
    fake = fake[None] if single else fake.reshape(fake.shape[0], fake.shape[1], -1)
    if len(real) <= k:
        raise ValueError(f"density and coverage need more than k={k} real points, got {len(real)}")
    radii = knn_radii(real, k)  # (m,)
    density = np.empty(fake.shape[0])
    coverage = np.empty(fake.shape[0])
    for i, f in enumerate(fake):
        inside = _pairwise(f, real) < radii[None, :]  # (n, m): generated point j in real point i's ball
        density[i] = inside.sum() / (k * len(f))
        coverage[i] = inside.any(axis=0).mean()
    return (float(density[0]), float(coverage[0])) if single else (density, coverage)


def vendi(kernel: np.ndarray) -> float:
    """The Vendi score of items with this similarity matrix (N, N), K_ii = 1."""
    from vendi_score import vendi as V

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # vendi-score 0.0.3 names scipy.sparse.csr
        return float(V.score_K(np.asarray(kernel, dtype=np.float64)))


def rbf_kernel(x: np.ndarray, scale: float) -> np.ndarray:
    """exp(-||x_i - x_j||^2 / (2 scale^2)) of points (N, d): a fixed scale keeps generations comparable."""
    d = _pairwise(x, x)
    return np.exp(-0.5 * (d / scale) ** 2)


def cosine_kernel(features: np.ndarray) -> np.ndarray:
    """Cosine similarity of feature rows (N, f); an all-zero row is similar only to itself."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return _cosine_of_gram(f @ f.T)


def _cosine_of_gram(gram: np.ndarray) -> np.ndarray:
    """Cosine similarities from inner products (N, N); a zero row is similar only to itself."""
    norm = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    outer = np.outer(norm, norm)
    k = np.where(outer > 0, gram / np.where(outer > 0, outer, 1.0), 0.0)
    np.fill_diagonal(k, 1.0)
    return np.clip(k, -1.0, 1.0)


def ngram_kernel(seqs, n: int = 2) -> np.ndarray:
    """Cosine similarity of the sequences' n-gram count vectors (1 to n-grams together)."""
    from scipy import sparse

    counts = [Counter(tuple(s[i:i + m]) for m in range(1, n + 1) for i in range(len(s) - m + 1)) for s in seqs]
    vocab: dict = {}
    rows, cols, vals = [], [], []
    for i, c in enumerate(counts):
        for g, v in c.items():
            rows.append(i)
            cols.append(vocab.setdefault(g, len(vocab)))
            vals.append(float(v))
    x = sparse.csr_matrix((vals, (rows, cols)), shape=(len(seqs), max(1, len(vocab))))
    return _cosine_of_gram((x @ x.T).toarray())


def self_bleu(seqs, max_samples: int = 100) -> float:
    """Mean BLEU-4 (nltk, smoothing method 1) of each of the first ``max_samples`` sequences against the other
    ones as references; 0 with fewer than two."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    seqs = [list(s) for s in seqs[:max_samples]]
    if len(seqs) < 2:
        return 0.0
    smooth = SmoothingFunction().method1
    scores = [sentence_bleu(seqs[:i] + seqs[i + 1:], h, smoothing_function=smooth) for i, h in enumerate(seqs)]
    return float(np.mean(scores))


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
