"""Variational autoencoder on images, retrained generation after generation.

Shumailov et al. (Nature 2024) trained a 784-400-20 MLP VAE on MNIST, each
generation on the previous generation's decoder outputs; here the same shape is
scaled to the image size (hidden = max(64, 400 * pixels / 784) unless set), with
a Bernoulli decoder by default (Gaussian optional) and a small conv VAE as an
option.  One generation per job (train, generate and evaluate are separate
Snakemake jobs); the model is saved as a ``torch.save`` state dict plus JSON
hyperparameters and loaded with ``weights_only=True``.

Sampling: z ~ N(0, lam I) (MAD's sampling bias: lam < 1 draws from the prior's
centre), decoded; the synthetic images are the decoder means (``emit: mean``,
as the paper) or Bernoulli draws (``emit: sample``).

Metrics use a judge classifier trained once per experiment on the real
training split (in the ``reference`` job, never the generation's own model).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import numpy as np

from ouroboros import data as D
from ouroboros import images
from ouroboros import judge as J
from ouroboros.settings import settings_schema
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.torch_base import KEEP_SETTING, THREADS_SETTING, WEIGHTS_DTYPE_SETTING, TorchTarget

log = logging.getLogger("ouroboros")
EVAL_SEED = 20240724  # fixed noise for the evaluation bounds: every generation is scored alike


def _torch():
    import torch

    return torch


class VAETarget(Curatable, MlflowFlavor, TorchTarget):
    name = "vae"
    headline = "recall"
    test_settings = ({"params": {"epochs": 1, "judge_epochs": 1, "iwae_k": 2, "batch_size": 64, "device": "cpu", "eval_max": 100},
                      "n": 40, "replicates": 1},)
    display = "VAE"
    curation_hooks = ("candidates", "loglik", "features", "judge_score", "duplicates")
    params_schema = settings_schema({
        "data": {"stage": "data", "enum": ["digits", "mnist", "fashion-mnist"], "default": "digits",
                 "description": "real data: scikit-learn's digits (offline), or MNIST / Fashion-MNIST IDX files"},
        "root": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "type": "string", "default": "",
                 "description": "folder with the IDX .gz files (mnist, fashion-mnist); relative to the working directory"},
        "split": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "enum": ["train", "test"], "default": "test",
                  "description": "which original split is the real pool (it is split again into train/test)"},
        "download": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "type": "boolean", "default": False},
        "test_fraction": {"stage": "data", "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.2},
        "split_seed": {"stage": "data", "type": "integer", "minimum": 0, "default": 0},
        "arch": {"stage": "fit", "enum": ["mlp", "conv"], "default": "mlp"},
        "hidden": {"stage": "fit", "type": "integer", "minimum": 0, "default": 0, "description": "0: max(64, 400 * pixels / 784)"},
        "latent": {"stage": "fit", "type": "integer", "minimum": 1, "default": 20},
        "decoder": {"stage": "fit", "enum": ["bernoulli", "gaussian"], "default": "bernoulli"},
        "decoder_std": {"stage": "fit", "applies": {"decoder": ["gaussian"]}, "type": "number", "exclusiveMinimum": 0, "default": 0.1},
        "epochs": {"stage": "fit", "type": "integer", "minimum": 1, "default": 20},
        "batch_size": {"stage": "fit", "type": "integer", "minimum": 1, "default": 128},
        "lr": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 1e-3},
        "device": {"stage": "none", "enum": ["auto", "cpu", "cuda"], "default": "auto"},
        "threads": THREADS_SETTING,
        "weights_dtype": WEIGHTS_DTYPE_SETTING,
        "keep": KEEP_SETTING,
        "amp": {"stage": "fit", "type": "boolean", "default": False, "description": "bf16 autocast on GPU"},
        "emit": {"stage": "sample", "enum": ["mean", "sample"], "default": "mean"},
        "iwae_k": {"stage": "evaluate", "type": "integer", "minimum": 1, "default": 50},
        "judge_epochs": {"stage": "sample", "type": "integer", "minimum": 1, "default": 30},
        "eval_max": {"stage": "evaluate", "type": "integer", "minimum": 50, "default": 2000,
                     "description": "at most this many images enter the k-NN and pairwise metrics"},
    })
    reference_settings = ("judge_epochs",)
    units = {"nll_real": "nats per image", "elbo_real": "nats per image", **J.UNITS}
    default_metric_data = "samples"
    metric_data = {"nll_real": "real", "elbo_real": "real"}
    metrics = {
        "nll_real": "IWAE bound of the negative log-likelihood of real test images (nats per image)",
        "elbo_real": "ELBO of real test images (nats per image)",
        **{k: J.METRICS[k] for k in ("class_entropy", "class_kl", "fd_judge", "precision", "recall", "density",
                                     "coverage", "vendi")},
        "latent_std_gen0": "std of the generation-0 encoder's latent means on generated images (mean over dims)",
        "pixel_diversity": J.METRICS["pixel_diversity"],
    }
    mlflow_requirements = ["torch", "numpy"]

    # -- data --------------------------------------------------------------------
    def _pool(self):
        cached = getattr(self, "_pool_", None)
        if cached is None:
            x, y = images.load(self.p["data"], self.p["root"], self.p["split"], self.p["download"])
            cached = self._pool_ = images.split(x, y, self.p["test_fraction"], self.p["split_seed"])
        return cached

    @property
    def side(self) -> int:
        return 8 if self.p["data"] == "digits" else 28

    @property
    def image_shape(self):
        return (self.side, self.side)

    def check_data(self, n: int) -> Optional[str]:
        try:
            x_train, *_ = self._pool()
        except images.DataError as e:
            return str(e)
        if n > len(x_train):
            return f"n={n} exceeds the {len(x_train)} real training images of {self.p['data']}"
        return None

    def real_data(self, rng, n, replicates):
        x_train, y_train, x_test, y_test = self._pool()
        idx = np.sort(rng.choice(len(x_train), size=n, replace=False))
        return {"train": x_train[idx][None], "train_labels": y_train[idx][None], "test": x_test[None], "test_labels": y_test[None]}

    def draw_real(self, rng, m, replicates):
        x_train, *_ = self._pool()
        return x_train[rng.choice(len(x_train), size=m, replace=False)][None]

    # -- torch plumbing --------------------------------------------------------------
    def item_bytes(self):
        return 4 * self.side * self.side

    # -- costs (ouroboros.costs) ---------------------------------------------------------------
    def work(self, stage: str, n: int) -> float:
        """Images through the network: fit, epochs times n; sample, n; evaluate, the real test images times the
        IWAE samples and the (at most eval_max) samples through the judge."""
        p = self.p
        if stage == "fit":
            return float(p["epochs"] * n)
        if stage == "sample":
            return float(n)
        test = len(self._pool()[2])
        return float(test * (p["iwae_k"] + 1) + min(n, p["eval_max"]))

    def probe_params(self) -> dict:
        return dict(self.params, epochs=1)

    def probe_items(self, stage: str) -> int:
        return 4 * self.p["batch_size"]

    def _hidden(self, x_dim):
        return self.p["hidden"] or max(64, round(400 * x_dim / 784))

    def parameters(self) -> int:
        """Counted from the settings (the layers of ``nets.vae.VAENet``; nothing built)."""
        x, side, l = self.side * self.side, self.side, self.p["latent"]
        h = self._hidden(x)
        heads = 2 * (h * l + l)  # mu, logvar
        if self.p["arch"] == "conv":
            c, s4 = 32, math.ceil(side / 4)
            flat = 2 * c * s4 * s4
            enc = (9 * c + c) + (9 * c * 2 * c + 2 * c) + (flat * h + h)
            dec = (l * h + h) + (h * flat + flat) + (9 * 2 * c * c + c) + (9 * c + 1)
            return enc + dec + heads
        return (x * h + h) + heads + (l * h + h) + (h * x + x)

    def _new_net(self):
        from ouroboros.nets.vae import VAEConfig, VAENet

        x_dim = self.side * self.side
        return VAENet(VAEConfig(x_dim, self.side, self._hidden(x_dim), self.p["latent"], self.p["arch"]))

    def _recon_nll(self, out, x):
        torch = _torch()
        if self.p["decoder"] == "bernoulli":
            return torch.nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1)
        s = self.p["decoder_std"]
        return (0.5 * ((x - out) / s) ** 2 + math.log(s) + 0.5 * math.log(2 * math.pi)).sum(1)

    # -- model -------------------------------------------------------------------
    def _train(self, x, seed: int, device: str):
        """The VAE's loop (:func:`ouroboros.nets.vae.train_vae`): Adam on the negative ELBO, a new network."""
        import torch

        from ouroboros.nets.vae import train_vae

        gen = torch.Generator().manual_seed(seed + 1)
        net = self._new_net().to(device)
        return train_vae(net, x, self._recon_nll, epochs=self.p["epochs"], batch_size=self.p["batch_size"],
                         lr=self.p["lr"], amp=self.p["amp"], device=device, generator=gen, log=log)

    def sample(self, n, lam, rng):
        torch = _torch()
        torch.manual_seed(int(rng.integers(2**62)))
        with torch.no_grad():
            z = math.sqrt(lam) * torch.randn(n, self.p["latent"])
            out = self.net_.decode(z)
            mean = torch.sigmoid(out) if self.p["decoder"] == "bernoulli" else out.clamp(0, 1)
            if self.p["emit"] == "sample":
                mean = torch.bernoulli(mean) if self.p["decoder"] == "bernoulli" else (mean + self.p["decoder_std"] * torch.randn_like(mean)).clamp(0, 1)
        return mean.numpy().astype(np.float32)[None]

    def encode_means(self, x: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.no_grad():
            return self.net_.encode(torch.as_tensor(x, dtype=torch.float32))[0].numpy()

    def bounds(self, x: np.ndarray, k: int) -> tuple[float, float]:
        """(IWAE NLL bound with k samples, ELBO), nats per image, with fixed evaluation noise."""
        torch = _torch()
        gen = torch.Generator().manual_seed(EVAL_SEED)
        nll, elbo = [], []
        with torch.no_grad():
            for i in range(0, len(x), 256):
                xb = torch.as_tensor(x[i:i + 256], dtype=torch.float32)
                mu, logvar = self.net_.encode(xb)
                std = torch.exp(0.5 * logvar)
                eps = torch.randn((k,) + mu.shape, generator=gen)
                z = mu + std * eps  # (k, b, latent)
                out = self.net_.decode(z.reshape(-1, mu.shape[1]))
                log_px = -self._recon_nll(out, xb.repeat(k, 1)).reshape(k, -1)
                log_pz = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
                log_qz = (-0.5 * eps ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
                w = log_px + log_pz - log_qz
                nll.append(-(torch.logsumexp(w, 0) - math.log(k)))
                kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
                elbo.append(log_px[0] - kl)
        return float(torch.cat(nll).mean()), float(torch.cat(elbo).mean())

    # -- judge and metrics ---------------------------------------------------------------
    def reference(self, rng):
        """Train the judge classifier on the real training split; store it and real-test features."""
        x_train, y_train, x_test, y_test = self._pool()
        return J.judge_reference(x_train, y_train, x_test, y_test, rng, self.p["judge_epochs"])

    def evaluate(self, samples, real, reference, gen0):
        x_gen = np.asarray(samples)[0]
        x_test = real["test"][0]
        out = {}
        out["nll_real"], out["elbo_real"] = self.bounds(x_test, self.p["iwae_k"])
        out.update(J.judge_metrics(x_gen, reference, self.p["eval_max"]))
        out["latent_std_gen0"] = (float(gen0.encode_means(x_gen[:self.p["eval_max"]]).std(axis=0).mean())
                                  if len(x_gen) >= 6 else float("nan"))
        return {k: out[k] for k in self.metrics}

    # -- persistence and tracking hooks ------------------------------------------------------
    def saved_info(self) -> dict:
        return {"side": self.side}

    # -- curation hooks ---------------------------------------------------------------------------
    def loglik(self, items):
        """The ELBO of each image under this model (nats; one sample of the encoder, fixed noise)."""
        x = D.items(items, 0)
        return self.elbo(x)[None]

    def judge_score(self, items, reference):
        """The judge's confidence: its largest class probability for each image."""
        return J.judge_confidence(D.items(items, 0), reference)[None]

    def duplicates(self, items, settings, reference):
        """Near duplicates in the judge's feature space (Euclidean ``tolerance``; 0: identical images)."""
        x = D.items(items, 0)
        if settings["tolerance"] == 0:
            return D.near_duplicates(x[None], 0.0)
        return D.near_duplicates(J.judge_features(x, reference)[None], settings["tolerance"])

    def elbo(self, x: np.ndarray) -> np.ndarray:
        torch = _torch()
        gen = torch.Generator().manual_seed(EVAL_SEED)
        out = []
        with torch.no_grad():
            for i in range(0, len(x), 512):
                xb = torch.as_tensor(x[i:i + 512], dtype=torch.float32)
                mu, logvar = self.net_.encode(xb)
                z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
                kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
                out.append(-self._recon_nll(self.net_.decode(z), xb) - kl)
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def write_sample_artifacts(self, samples, directory: Path) -> None:
        """A grid of the first 64 samples."""
        images.write_grid(samples, self.side, directory)

    def sample_artifacts(self, samples_dir: Path) -> list[Path]:
        return images.grid_files(samples_dir)

    def decoder_module(self):
        """The generator as a module: z (batch, latent) -> images (batch, pixels) in [0, 1]."""
        torch = _torch()
        net, bernoulli = self.net_, self.p["decoder"] == "bernoulli"

        class Decoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, z):
                out = self.net.decode(z)
                return torch.sigmoid(out) if bernoulli else out.clamp(0, 1)

        return Decoder().eval()

    def log_mlflow_model(self, name, model_dir):
        """``mlflow.pytorch`` in MLflow 3's ``pt2`` format (a traced graph, no pickle) of the decoder:
        ``mlflow.pytorch.load_model(uri)(z)`` with z ~ N(0, lam I) of shape (n, latent) draws n images.
        The full state dict and hyperparameters are logged beside it."""
        import mlflow

        example = np.zeros((2, self.p["latent"]), dtype=np.float32)
        info = mlflow.pytorch.log_model(self.decoder_module(), name=name, serialization_format="pt2",
                                        input_example=example, pip_requirements=self.mlflow_requirements)
        mlflow.log_artifacts(str(model_dir), artifact_path=f"{name}-state-dict")
        return info

