"""The judge of image targets: a classifier trained once per experiment on the real training split (in the
``reference`` job, never on a generation's own output), and the metrics of generated images it gives.

The VAE and the diffusion target share it: :func:`judge_reference` trains the judge and stores it with the
real test images' features and class histogram (plain arrays in the reference folder);
:func:`judge_metrics` scores a generation's images against them (class entropy and KL, Frechet distance,
k-NN precision and recall, density and coverage and the Vendi score in judge-feature space, pixel
diversity).  torch is imported only here.
"""
from __future__ import annotations

import logging

import numpy as np

from ouroboros import metrics as M

log = logging.getLogger("ouroboros")

#: the metrics :func:`judge_metrics` returns, with their descriptions
METRICS = {
    "class_entropy": "entropy of the judge's class histogram of generated images (nats)",
    "class_kl": "KL of the generated class histogram to the real one (nats)",
    "fd_judge": "Frechet distance between judge features of generated and real test images",
    "precision": "k-NN (k = 5) manifold precision in judge-feature space",
    "recall": "k-NN (k = 5) manifold recall in judge-feature space",
    "pixel_diversity": "mean pairwise Euclidean distance between generated images",
    "density": "density of generated images against real test images in judge-feature space (Naeem et al. 2020, "
               "k = 5: 1 when they match, above 1 when they crowd the real modes)",
    "coverage": "share of real test images whose 5-NN ball in judge-feature space holds a generated image "
                "(Naeem et al. 2020)",
    "vendi": "Vendi score of generated images under the cosine similarity of their judge features: their "
             "effective number of distinct images",
}
UNITS = {"class_entropy": "nats", "class_kl": "nats", "coverage": "share", "vendi": "effective images"}


def judge_reference(x_train, y_train, x_test, y_test, rng: np.random.Generator, epochs: int) -> dict[str, np.ndarray]:
    """Train the judge on the real training split; return it (``judge.*``) with the real test images' features
    (``real_feats``), class histogram (``real_hist``) and the judge's test accuracy."""
    import torch

    from ouroboros.nets.vae import Judge

    torch.manual_seed(int(rng.integers(2**62)))
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    judge = Judge(x_train.shape[1])
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    xt, yt = torch.as_tensor(x_train), torch.as_tensor(y_train)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 128):
            b = perm[i:i + 128]
            loss = torch.nn.functional.cross_entropy(judge(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    judge.eval()
    feats, pred = judge_apply(judge, x_test)
    acc = float((pred == y_test).mean())
    log.info("judge: %d real training images, test accuracy %.3f", len(x_train), acc)
    hist = np.bincount(pred, minlength=10).astype(float)
    arrays = {f"judge.{k}": v.numpy() for k, v in judge.state_dict().items()}
    arrays.update({"real_feats": feats, "real_hist": hist / hist.sum(), "judge_accuracy": np.asarray(acc)})
    return arrays


def judge_from(reference: dict):
    """The judge stored by :func:`judge_reference`."""
    import torch

    from ouroboros.nets.vae import Judge

    state = {k[len("judge."):]: torch.as_tensor(v) for k, v in reference.items() if k.startswith("judge.")}
    judge = Judge(state["0.weight"].shape[1])
    judge.load_state_dict(state)
    return judge.eval()


def judge_apply(judge, x: np.ndarray):
    """(penultimate features, predicted classes) of images x (N, pixels)."""
    feats, probs = judge.apply_to(x)
    return feats, probs.argmax(axis=1)


def judge_metrics(x_gen: np.ndarray, reference: dict, cap: int) -> dict[str, float]:
    """:data:`METRICS` of generated images x_gen (N, pixels) in [0, 1]; at most ``cap`` images enter the k-NN
    and pairwise metrics.  NaN for every metric where fewer than 6 images were generated."""
    if len(x_gen) < 6:
        return {k: float("nan") for k in METRICS}
    judge = judge_from(reference)
    sub = x_gen[:cap]
    feats, pred = judge_apply(judge, sub)
    out = {}
    out["class_entropy"], out["class_kl"] = M.class_histogram_stats(pred, reference["real_hist"], 10)
    real_feats = reference["real_feats"][:cap]
    out["fd_judge"] = M.frechet_distance(feats, real_feats)
    out["precision"], out["recall"] = M.precision_recall(real_feats, feats, k=5)
    out["density"], out["coverage"] = M.density_coverage(real_feats, feats, k=5)
    out["vendi"] = M.vendi(M.cosine_kernel(feats))
    out["pixel_diversity"] = M.mean_pairwise_distance(sub[:1000])
    return out


def judge_confidence(items: np.ndarray, reference: dict) -> np.ndarray:
    """The judge's largest class probability for each image (N, pixels) -> (N,)."""
    _, probs = judge_from(reference).apply_to(items)
    return probs.max(axis=1)


def judge_features(items: np.ndarray, reference: dict) -> np.ndarray:
    """The judge's penultimate features of images (N, pixels) -> (N, 64)."""
    feats, _ = judge_from(reference).apply_to(items)
    return feats
