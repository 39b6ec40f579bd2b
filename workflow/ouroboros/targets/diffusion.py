"""Denoising diffusion models (DDPM, Ho et al. 2020) retrained generation after generation, on images or points.

The loops of Alemohammad et al. ("Self-Consuming Generative Models Go MAD", ICLR 2024: DDPM on MNIST), Bertrand
et al. (ICLR 2024: iterative retraining with a fixed real set) and Gillman et al. (ICML 2024: self-correcting
loops), built on the field's library ``diffusers``:

* ``data: digits | mnist | fashion-mnist``: a small ``UNet2DModel`` on the images (the VAE target's real data,
  judge and metrics, :mod:`ouroboros.judge`); pixels in [0, 1] are modelled as 2x - 1;
* ``data: gmm``: an MLP noise predictor on d-dimensional points from a known Gaussian mixture (the GMM target's
  truth, real data and metrics, computed on a mixture fitted to the model's samples), standardised with the
  training set's mean and std (kept with the model).

Training is DDPM's simple loss: epsilon prediction, t uniform over the scheduler's ``train_timesteps`` and its
betas (``beta_schedule``, ``beta_start``, ``beta_end``; diffusers' ``DDPMScheduler.add_noise``), ``train_steps``
AdamW steps of ``batch_size`` items drawn with replacement (constant ``lr`` or cosine decay to 0), an EMA of
the weights as an option (``ema`` decay).
``init: scratch`` trains a new network each generation; ``init: previous`` fine-tunes generation t - 1's.

Sampling runs diffusers' ``DDIMScheduler`` for ``steps`` steps: ``sampler: ddim`` is DDIM (eta = 0,
deterministic given x_T), ``sampler: ddpm`` is eta = 1, which is DDPM's ancestral sampler (each step draws
x_{t-1} from the posterior q(x_{t-1} | x_t, x0_hat) with variance beta~_t; Song et al. 2021, Eq. 16; a test
holds it equal to ``DDPMScheduler.step``), so that the noise of every step can be given.

**Sampling bias lam** (a lower sampling temperature): the initial noise x_T and every step's noise are drawn
from N(0, lam I) instead of N(0, I), i.e. scaled by sqrt(lam); lam = 1 is the unbiased sampler, lam < 1 draws
from the model's high-density centre (with DDIM only x_T is scaled).  MAD trades quality for diversity with a
sampling bias in every family it studies (StyleGAN's truncation psi; for diffusion models it names guidance);
this target has no class conditioning to guide, so the bias is the temperature of the noise: see the README,
"Diffusion".

Curation hooks: ``loglik`` is minus the model's denoising loss on the item (DDPM's simple loss at
``score_draws`` fixed timesteps and noises: a likelihood proxy, the ELBO's unweighted form), so ``self`` and
``gen0`` scorers rank by it; images have ``judge_score`` and ``duplicates`` in judge-feature space, points
``truth_logpdf`` (``truth``, ``noisy``, ``ratio`` scorers); both have ``correct`` (the ``correct`` selector:
Gillman et al.'s self-correction, :meth:`DiffusionTarget.correct`).

The fitted network is kept as plain arrays (its state dict, ``state.npz``; nothing is unpickled), so chains run
one generation per job (the default) or in blocks, with the same numbers.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from pathlib import Path
from typing import Optional

import numpy as np

from ouroboros import data as D
from ouroboros import images, io
from ouroboros import judge as J
from ouroboros.settings import settings_schema
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.gmm import PRESETS, GMMTarget, mixture_from_spec
from ouroboros.targets.torch_base import KEEP_SETTING, THREADS_SETTING, TorchTarget

log = logging.getLogger("ouroboros")
EVAL_SEED = 20240307  # fixed timesteps and noise of the denoising-loss scores: every generation is scored alike
IMAGE_DATA = ("digits", "mnist", "fashion-mnist")
_IMAGES = {"data": list(IMAGE_DATA)}
_POINTS = {"data": ["gmm"]}


def _torch():
    import torch

    return torch


class DiffusionTarget(Curatable, MlflowFlavor, TorchTarget):
    name = "diffusion"
    display = "diffusion target"
    max_block = None  # array state: one generation per job (default) or blocks
    params_schema = settings_schema({
        "data": {"stage": "data", "enum": [*IMAGE_DATA, "gmm"], "default": "digits",
                 "description": "images (scikit-learn's digits offline, MNIST / Fashion-MNIST IDX files) or points "
                                "from a known Gaussian mixture (gmm)"},
        "root": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "type": "string", "default": "",
                 "description": "folder with the IDX .gz files; relative to the working directory"},
        "split": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "enum": ["train", "test"], "default": "test",
                  "description": "which original split is the real pool (it is split again into train/test)"},
        "download": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "type": "boolean", "default": False},
        "test_fraction": {"stage": "data", "applies": _IMAGES, "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.2},
        "split_seed": {"stage": "data", "applies": _IMAGES, "type": "integer", "minimum": 0, "default": 0},
        "truth": {"stage": "data", "applies": _POINTS, "default": "separated",
                  "description": "the mixture (gmm): a preset of the GMM target or {weights, means, stds|covs}",
                  "oneOf": [{"enum": sorted(PRESETS)}, {"type": "object"}]},
        "eval_size": {"stage": "sample", "applies": _POINTS, "type": "integer", "minimum": 100, "default": 10000,
                      "description": "Monte Carlo size of the mixture metrics (gmm)"},
        "test_size": {"stage": "data", "applies": _POINTS, "type": "integer", "minimum": 10, "default": 2000,
                      "description": "real held-out points (gmm)"},
        "eval_samples": {"stage": "evaluate", "applies": _POINTS, "type": "integer", "minimum": 10, "default": 2000,
                         "description": "samples the point metrics are fitted to, at least (gmm): a chain that "
                                        "draws fewer (a large real share) is scored on a separate draw of this many"},
        "channels": {"stage": "fit", "applies": _IMAGES, "type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                     "default": [32, 64],
                     "description": "the UNet's block_out_channels, one per resolution; the image side must be "
                                    "divisible by 2^(len - 1)"},
        "layers_per_block": {"stage": "fit", "applies": _IMAGES, "type": "integer", "minimum": 1, "default": 1},
        "norm_groups": {"stage": "fit", "applies": _IMAGES, "type": "integer", "minimum": 1, "default": 8,
                        "description": "GroupNorm groups; every entry of channels must be a multiple"},
        "hidden": {"stage": "fit", "applies": _POINTS, "type": "integer", "minimum": 1, "default": 128, "description": "MLP width"},
        "depth": {"stage": "fit", "applies": _POINTS, "type": "integer", "minimum": 1, "default": 3, "description": "MLP layers"},
        "train_timesteps": {"stage": "fit", "type": "integer", "minimum": 2, "default": 1000, "description": "the forward process's T"},
        "beta_schedule": {"stage": "fit", "enum": ["linear", "scaled_linear", "squaredcos_cap_v2"], "default": "linear"},
        "beta_start": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 1e-4},
        "beta_end": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.02},
        "sampler": {"stage": "sample", "enum": ["ddim", "ddpm"], "default": "ddim",
                    "description": "ddim (eta 0) or ddpm (eta 1: DDPM's ancestral sampler), over `steps` steps"},
        "steps": {"stage": "sample", "type": "integer", "minimum": 1, "default": 50, "description": "sampling steps"},
        "train_steps": {"stage": "fit", "type": "integer", "minimum": 1, "default": 2000,
                        "description": "optimiser steps per generation (batches drawn with replacement)"},
        "batch_size": {"stage": "fit", "type": "integer", "minimum": 1, "default": 128},
        "lr": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 1e-3},
        "lr_schedule": {"stage": "fit", "enum": ["constant", "cosine"], "default": "constant",
                        "description": "constant, or cosine decay from lr to 0 over train_steps"},
        "ema": {"stage": "fit", "type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.0,
                "description": "decay of an exponential moving average of the weights, which is then the model "
                               "(0: off)"},
        "init": {"stage": "fit", "enum": ["scratch", "previous"], "default": "scratch",
                 "description": "train each generation from a new network, or fine-tune generation t - 1's"},
        "device": {"stage": "none", "enum": ["auto", "cpu", "cuda"], "default": "auto"},
        "threads": THREADS_SETTING,
        "keep": KEEP_SETTING,
        "amp": {"stage": "fit", "type": "boolean", "default": False, "description": "bf16 autocast on GPU"},
        "sample_batch": {"stage": "sample", "type": "integer", "minimum": 1, "default": 1000, "description": "items per sampling batch"},
        "score_draws": {"stage": "sample", "type": "integer", "minimum": 1, "default": 4,
                        "description": "fixed (timestep, noise) draws per item of the denoising-loss score"},
        "judge_epochs": {"stage": "sample", "applies": _IMAGES, "type": "integer", "minimum": 1, "default": 30},
        "eval_max": {"stage": "evaluate", "type": "integer", "minimum": 50, "default": 2000,
                     "description": "at most this many items enter the k-NN and pairwise metrics"},
    })
    reference_settings = ("judge_epochs", "eval_size")
    mlflow_requirements = ["torch", "diffusers", "numpy", "pandas", "scikit-learn", "mlflow"]
    default_metric_data = "samples"
    metric_data = {"denoise_real": "real", "kl_truth_model": "samples", "kl_model_truth": "samples",
                   "nll_real": "real"}
    #: every metric the target can report; :attr:`metrics` (per instance) holds the data kind's
    ALL_METRICS = {
        "denoise_real": "DDPM's simple loss (noise-prediction MSE per coordinate) on real test items, fixed noise",
        **J.METRICS,
        "kl_truth_model": "KL(truth || mixture fitted to the samples), Monte Carlo (gmm)",
        "kl_model_truth": "KL(mixture fitted to the samples || truth), Monte Carlo (gmm)",
        "nll_real": "NLL per point of real test points under the mixture fitted to the samples (gmm)",
        "truth_nll_samples": "minus the truth's log-density of the samples, mean (gmm; lower: higher quality)",
        "tail_mass_ratio": "share of samples beyond the truth's 99th-percentile Mahalanobis radius, over 1% (gmm)",
        "sample_std": "std of the samples (sqrt(trace(cov) / d)) over the truth's (gmm)",
        "point_precision": "k-NN (k = 5) precision of the samples against real test points (gmm)",
        "point_recall": "k-NN (k = 5) recall of the samples against real test points (gmm)",
    }
    IMAGE_METRICS = ("denoise_real", *J.METRICS)
    POINT_METRICS = ("denoise_real", "kl_truth_model", "kl_model_truth", "nll_real", "truth_nll_samples",
                     "tail_mass_ratio", "sample_std", "point_precision", "point_recall")
    metrics = dict(zip(IMAGE_METRICS, map(ALL_METRICS.get, IMAGE_METRICS)))
    units = {"class_entropy": "nats", "class_kl": "nats", "kl_truth_model": "nats", "kl_model_truth": "nats",
             "nll_real": "nats per point", "truth_nll_samples": "nats per point"}

    @classmethod
    def metrics_for(cls, params):
        names = cls.POINT_METRICS if params.get("data") == "gmm" else cls.IMAGE_METRICS
        return {k: cls.ALL_METRICS[k] for k in names}

    def __init__(self, **params):
        super().__init__(**params)
        self.metrics = self.metrics_for(self.p)
        self.curation_hooks = (("candidates", "loglik", "features", "judge_score", "duplicates", "correct")
                               if self.is_image else
                               ("candidates", "truth_logpdf", "loglik", "features", "duplicates", "correct"))
        if not self.is_image:
            self.truth_w, self.truth_mu, self.truth_cov = mixture_from_spec(self.p["truth"])

    # -- data --------------------------------------------------------------------
    @property
    def is_image(self) -> bool:
        return self.p["data"] in IMAGE_DATA

    @property
    def side(self) -> int:
        return 8 if self.p["data"] == "digits" else 28

    @property
    def image_shape(self):
        return (self.side, self.side) if self.is_image else None

    @property
    def d(self) -> int:
        return self.side * self.side if self.is_image else int(self.truth_mu.shape[1])

    def _pool(self):
        x, y = images.load(self.p["data"], self.p["root"], self.p["split"], self.p["download"])
        return images.split(x, y, self.p["test_fraction"], self.p["split_seed"])

    def _mixture(self) -> GMMTarget:
        """The GMM target of this truth: its real data, reference and metrics (fitted to samples)."""
        return GMMTarget(components=len(self.truth_w), truth=self.p["truth"], eval_size=self.p["eval_size"],
                         test_size=self.p["test_size"])

    def check_data(self, n: int) -> Optional[str]:
        p = self.p
        if p["steps"] > p["train_timesteps"]:
            return f"params.steps={p['steps']} exceeds params.train_timesteps={p['train_timesteps']}"
        if p["beta_start"] >= p["beta_end"]:
            return f"params.beta_start={p['beta_start']} must be below params.beta_end={p['beta_end']}"
        if not self.is_image:
            return None
        levels = len(p["channels"])
        if self.side % 2 ** (levels - 1):
            return (f"params.channels: a UNet of {levels} resolutions halves the image {levels - 1} times; "
                    f"{p['data']}'s side {self.side} is not divisible by {2 ** (levels - 1)}")
        bad = [c for c in p["channels"] if c % p["norm_groups"]]
        if bad:
            return f"params.channels {bad} are not multiples of params.norm_groups={p['norm_groups']}"
        try:
            x_train, *_ = self._pool()
        except images.DataError as e:
            return str(e)
        if n > len(x_train):
            return f"n={n} exceeds the {len(x_train)} real training images of {p['data']}"
        return None

    def real_data(self, rng, n, replicates):
        if not self.is_image:
            return self._mixture().real_data(rng, n, replicates)
        x_train, y_train, x_test, y_test = self._pool()
        idx = np.sort(rng.choice(len(x_train), size=n, replace=False))
        return {"train": x_train[idx][None], "train_labels": y_train[idx][None], "test": x_test[None],
                "test_labels": y_test[None]}

    def draw_real(self, rng, m, replicates):
        if not self.is_image:
            return self._mixture().draw_real(rng, m, replicates)
        x_train, *_ = self._pool()
        return x_train[rng.choice(len(x_train), size=m, replace=False)][None]

    def reference(self, rng):
        """Images: the judge (trained on the real training split); points: the GMM target's fixed truth sample
        and tail radius."""
        if not self.is_image:
            return self._mixture().reference(rng)
        x_train, y_train, x_test, y_test = self._pool()
        return J.judge_reference(x_train, y_train, x_test, y_test, rng, self.p["judge_epochs"])

    def item_bytes(self):
        return 4 * self.d if self.is_image else 8 * self.d

    # -- costs (ouroboros.costs) ---------------------------------------------------------------
    def work(self, stage: str, n: int) -> float:
        """Items through the network: fit, train_steps times the batch (whatever n is); sample, n times the
        sampling steps; evaluate, the real test items' denoising scores and the (at most eval_max) samples."""
        p = self.p
        if stage == "fit":
            return float(p["train_steps"] * p["batch_size"])
        if stage == "sample":
            return float(n * p["steps"])
        return float(p["score_draws"] * 2000 + min(n, p["eval_max"]) * (1 if self.is_image else 4))

    def probe_params(self) -> dict:
        return dict(self.params, train_steps=min(self.p["train_steps"], 5), judge_epochs=1)

    def probe_items(self, stage: str) -> int:
        return self.p["batch_size"] if stage == "fit" else min(self.p["sample_batch"], 200)

    # -- the network and the schedulers --------------------------------------------------------
    def _new_net(self):
        from ouroboros.nets import diffusion as N

        if self.is_image:
            return N.ImageDenoiser(N.UNetConfig(self.side, tuple(self.p["channels"]), self.p["layers_per_block"],
                                                self.p["norm_groups"]))
        return N.PointDenoiser(N.MLPConfig(self.d, self.p["hidden"], self.p["depth"]))

    def train_scheduler(self):
        """diffusers' DDPMScheduler of the forward process (its betas and ``add_noise``)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=self.p["train_timesteps"], beta_schedule=self.p["beta_schedule"],
                             beta_start=self.p["beta_start"], beta_end=self.p["beta_end"],
                             clip_sample=self.is_image, clip_sample_range=1.0)

    def sample_scheduler(self):
        """diffusers' DDIMScheduler over the same betas, set to ``steps`` steps."""
        from diffusers import DDIMScheduler

        sched = DDIMScheduler.from_config(self.train_scheduler().config)
        sched.set_timesteps(self.p["steps"])
        return sched

    def _to_model(self, x: np.ndarray):
        """Items -> the network's space: images 2x - 1 shaped (N, 1, s, s); points standardised."""
        torch = _torch()
        x = np.asarray(x)
        if self.is_image:
            return torch.as_tensor(2 * x.astype(np.float32) - 1).reshape(-1, 1, self.side, self.side)
        return torch.as_tensor(((x - self.shift_) / self.scale_).astype(np.float32))

    def _from_model(self, z) -> np.ndarray:
        z = z.double().numpy()
        if self.is_image:
            return np.clip((z.reshape(len(z), -1) + 1) / 2, 0, 1).astype(np.float32)
        return z * self.scale_ + self.shift_

    # -- model -------------------------------------------------------------------
    def starts_from_previous(self) -> bool:
        return self.p["init"] == "previous"

    def _start(self):
        """The network the fit starts from: new, or generation t - 1's (``init: previous``)."""
        prev = self.previous_model()
        if prev is None:
            return self._new_net(), None
        return copy.deepcopy(prev.net_), (prev.shift_, prev.scale_)

    def fit(self, data, rng):
        torch = _torch()
        x = D.items(data, 0)
        if len(x) == 0:
            raise ValueError("the training set is empty (after curation)")
        device = self._device()
        seed = int(rng.integers(2**62))
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed + 1)
        net, norm = self._start()
        if self.is_image:
            self.shift_, self.scale_ = np.zeros(1), np.ones(1)
        elif norm is not None:
            self.shift_, self.scale_ = norm
        else:
            self.shift_ = np.asarray(x, float).mean(axis=0)
            self.scale_ = np.maximum(np.asarray(x, float).std(axis=0), 1e-6)
        sched = self.train_scheduler()
        xt = self._to_model(x).to(device)
        net = net.to(device).train()
        ema = copy.deepcopy(net).eval() if self.p["ema"] else None
        opt = torch.optim.AdamW(net.parameters(), lr=self.p["lr"])
        n, bs, steps = len(xt), self.p["batch_size"], self.p["train_steps"]
        decay = (lambda i: 0.5 * (1 + math.cos(math.pi * i / steps))) if self.p["lr_schedule"] == "cosine" else None
        lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, decay) if decay else None
        amp = self.p["amp"] and device.startswith("cuda")
        autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
        every = max(1, steps // 20)
        losses, self.curve_ = [], []
        for step in range(1, steps + 1):
            idx = torch.randint(0, n, (bs,), generator=gen)
            noise = torch.randn((bs,) + tuple(xt.shape[1:]), generator=gen).to(device)
            t = torch.randint(0, sched.config.num_train_timesteps, (bs,), generator=gen).to(device)
            x0 = xt[idx.to(device)]
            noisy = sched.add_noise(x0, noise, t)
            with autocast():
                pred = net(noisy, t)
            loss = torch.nn.functional.mse_loss(pred.float(), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if lr_sched is not None:
                lr_sched.step()
            if ema is not None:
                with torch.no_grad():
                    for pe, pn in zip(ema.parameters(), net.parameters()):
                        pe.lerp_(pn, 1 - self.p["ema"])
            losses.append(loss.detach())
            if step % every == 0 or step == steps:
                mean = float(torch.stack(losses).mean())
                losses = []
                self.curve_.append((step, mean))
                log.info("step %d/%d loss %.4f (%d items, %s)", step, steps, mean, n, device)
        self.net_ = (ema if ema is not None else net).to("cpu").eval()
        self._record_device(device)
        self.final_loss_ = self.curve_[-1][1]
        return self

    def sample(self, n, lam, rng):
        torch = _torch()
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        sched = self.sample_scheduler()
        eta = 1.0 if self.p["sampler"] == "ddpm" else 0.0
        shape = (1, self.side, self.side) if self.is_image else (self.d,)
        root = math.sqrt(lam)
        device = self._device()
        net = self.net_.to(device)
        out = []
        with torch.no_grad():
            for start in range(0, n, self.p["sample_batch"]):
                m = min(self.p["sample_batch"], n - start)
                z = root * torch.randn((m,) + shape, generator=gen)
                x = z.to(device)
                for t in sched.timesteps:
                    eps = net(x, t.to(device)).float()
                    noise = (root * torch.randn((m,) + shape, generator=gen)).to(device) if eta else None
                    x = sched.step(eps, t, x, eta=eta, use_clipped_model_output=True, variance_noise=noise).prev_sample
                out.append(self._from_model(x.cpu()))
        self.net_ = net.to("cpu")
        if not out:
            return np.zeros((1, 0, self.d), np.float32 if self.is_image else float)
        return np.concatenate(out)[None]

    def denoise_loss(self, x: np.ndarray, draws: Optional[int] = None) -> np.ndarray:
        """DDPM's simple loss of each item (N, ...) -> (N,): the noise-prediction MSE per coordinate, averaged over
        ``draws`` fixed (timestep, noise) pairs per item (the same for every model: a deterministic score)."""
        torch = _torch()
        draws = draws or self.p["score_draws"]
        sched = self.train_scheduler()
        gen = torch.Generator().manual_seed(EVAL_SEED)
        x0 = self._to_model(x)
        out = torch.zeros(len(x0), dtype=torch.float64)
        with torch.no_grad():
            for _ in range(draws):
                noise = torch.randn(x0.shape, generator=gen)
                t = torch.randint(0, sched.config.num_train_timesteps, (len(x0),), generator=gen)
                for i in range(0, len(x0), 1000):
                    sl = slice(i, i + 1000)
                    pred = self.net_(sched.add_noise(x0[sl], noise[sl], t[sl]), t[sl])
                    out[sl] += ((pred - noise[sl]) ** 2).flatten(1).mean(1).double()
        return (out / draws).numpy()

    # -- metrics -----------------------------------------------------------------
    def min_eval_items(self) -> int:
        """Points: the mixture metrics are fitted to the samples (5 x (d + d(d+1)/2) numbers for the truth's
        components), so they need ``eval_samples`` of them whatever the regime draws; images: what was drawn."""
        return 0 if self.is_image else int(self.p["eval_samples"])

    def evaluate(self, samples, real, reference, gen0):
        x_gen = np.asarray(samples)[0]
        out = {"denoise_real": float(self.denoise_loss(real["test"][0]).mean())}
        if self.is_image:
            out.update(J.judge_metrics(x_gen, reference, self.p["eval_max"]))
            return out
        return dict(out, **self._point_metrics(x_gen, real, reference))

    def _point_metrics(self, x_gen: np.ndarray, real, reference) -> dict[str, float]:
        from ouroboros import metrics as M

        mixture = self._mixture()
        if len(x_gen) < max(6, mixture.components):
            return {k: float("nan") for k in self.POINT_METRICS if k != "denoise_real"}
        fitted = mixture.fit(x_gen[None].astype(float), np.random.default_rng(EVAL_SEED))
        scores = fitted.evaluate(x_gen[None], real, reference, fitted)
        cov = np.atleast_2d(np.cov(x_gen.T))
        diff = x_gen - reference["truth_mean"]
        maha = np.sqrt(np.einsum("mi,ij,mj->m", diff, np.linalg.inv(reference["truth_cov"]), diff))
        cap = self.p["eval_max"]
        precision, recall = M.precision_recall(real["test"][0][:cap], x_gen[:cap], k=5)
        return {"kl_truth_model": scores["kl_truth_model"], "kl_model_truth": scores["kl_model_truth"],
                "nll_real": scores["nll_real"],
                "truth_nll_samples": float(-self.truth_logpdf(x_gen[None]).mean()),
                "tail_mass_ratio": float(np.mean(maha > reference["tail_radius"]) / 0.01),
                "sample_std": float(np.sqrt(np.trace(cov) / np.trace(reference["truth_cov"]))),
                "point_precision": precision, "point_recall": recall}

    # -- curation hooks ---------------------------------------------------------------------------
    def loglik(self, items):
        """Minus the denoising loss of each item under this model (a likelihood proxy; fixed noise)."""
        return -self.denoise_loss(D.items(items, 0))[None]

    def truth_logpdf(self, items):
        return self._mixture().truth_logpdf(items)

    def feature_dim(self):
        return self.d

    def judge_score(self, items, reference):
        return J.judge_confidence(D.items(items, 0), reference)[None]

    def duplicates(self, items, settings, reference):
        """Images: near duplicates in the judge's feature space (``tolerance``; 0: identical images); points: the
        default Euclidean test."""
        x = np.asarray(D.items(items, 0))
        if self.is_image and settings["tolerance"] > 0:
            x = J.judge_features(x, reference)
        return D.near_duplicates(x[None], settings["tolerance"])

    def correction_centres(self, k: int, reference) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centres in item space (C, d), their features (C, f), their classes (C,)) the correction moves towards:
        images: k k-means centres per class of the real training images in the judge's feature space (each
        centre the mean image of its cluster); points: k k-means centres of the truth sample of the reference."""
        from sklearn.cluster import KMeans

        key = (k, id(reference))
        cached = getattr(self, "_centres", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        if self.is_image:
            x_train, y_train, *_ = self._pool()
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
            out = (np.asarray(centres, np.float32), np.asarray(cfeats), np.asarray(classes))
        else:
            pts = np.asarray(reference["eval_truth"], float)
            km = KMeans(k, n_init=1, random_state=0).fit(pts)
            out = (km.cluster_centers_, km.cluster_centers_, np.zeros(k, int))
        self._centres = (key, out)
        return out

    def correct(self, items, settings, reference):
        """Gillman et al.'s self-correction: each item moves a share ``gamma`` of the way to its nearest real
        cluster centre (:meth:`correction_centres`; images: the nearest among the centres of the class the judge
        gives it, in judge-feature space): x' = (1 - gamma) x + gamma c(x)."""
        x = np.asarray(D.items(items, 0))
        if len(x) == 0:
            return np.asarray(items)
        centres, cfeats, classes = self.correction_centres(settings["k"], reference)
        if self.is_image:
            feats, probs = J.judge_from(reference).apply_to(x)
            pred = probs.argmax(axis=1)
        else:
            feats, pred = np.asarray(x, float), np.zeros(len(x), int)
        dist = ((feats[:, None, :] - cfeats[None, :, :]) ** 2).sum(-1)
        dist[pred[:, None] != classes[None, :]] = np.inf
        nearest = centres[dist.argmin(axis=1)]
        g = settings["gamma"]
        return ((1 - g) * x + g * nearest).astype(x.dtype)[None]

    # -- state, persistence and tracking ------------------------------------------------------
    def get_state(self):
        state = {f"net.{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}
        state.update({"shift": np.asarray(self.shift_, float), "scale": np.asarray(self.scale_, float)})
        return state

    def set_state(self, state):
        torch = _torch()
        net = self._new_net()
        net.load_state_dict({k[len("net."):]: torch.as_tensor(np.asarray(v)) for k, v in state.items()
                             if k.startswith("net.")})
        self.net_ = net.eval()
        self.shift_, self.scale_ = np.asarray(state["shift"], float), np.asarray(state["scale"], float)
        return self

    def parameters(self) -> int:
        cached = getattr(self, "_parameters_", None)
        if cached is None:
            cached = self._parameters_ = super().parameters()
        return cached

    def save(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        io.save_npz(directory / "state.npz", **self.get_state())
        curve = getattr(self, "curve_", None)
        if curve:
            io.save_text(directory / "training_curve.csv",
                         "step,loss\n" + "".join(f"{int(a)},{float(b)!r}\n" for a, b in curve))
        io.save_json(directory / "target.json", {"target": self.name, "params": self.params,
                                                 "device": self.device_name()})

    def _load_state(self, directory: Path):
        try:
            self.set_state(io.load_npz(directory / "state.npz"))
        except RuntimeError as exc:  # a state dict that does not fit the described network
            raise io.IntermediateFileError(
                f"{directory / 'state.npz'} does not fit the diffusion model described by {directory / 'target.json'} "
                f"({str(exc).splitlines()[0]})", directory) from exc
        self.device_used_ = io.load_json(directory / "target.json").get("device", "cpu")
        return self

    def write_sample_artifacts(self, samples, directory: Path) -> None:
        """Images: a grid of the first 64 samples."""
        if self.is_image:
            images.write_grid(samples, self.side, directory)

    def sample_artifacts(self, samples_dir: Path) -> list[Path]:
        return images.grid_files(samples_dir)
