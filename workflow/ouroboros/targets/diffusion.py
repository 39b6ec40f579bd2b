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
this target has no class conditioning to guide, so the bias is the temperature of the noise: see docs/studies.md,
"Diffusion models".

Curation hooks: ``loglik`` is minus the model's denoising loss on the item (DDPM's simple loss at
``score_draws`` fixed timesteps and noises: a likelihood proxy, the ELBO's unweighted form), so ``self`` and
``gen0`` scorers rank by it; images have ``judge_score`` and ``duplicates`` in judge-feature space, points
``truth_logpdf`` (``truth``, ``noisy``, ``ratio`` scorers); both have ``correct`` (the ``correct`` selector:
Gillman et al.'s self-correction, :meth:`DiffusionTarget.correct`).

The fitted network is kept as plain arrays (its state dict, ``state.npz``; nothing is unpickled), so chains run
one generation per job (the default) or in blocks, with the same numbers.  Where the rest lives: the data kinds
(:mod:`ouroboros.targets.diffusion_data`), the networks, DDPM loop and samplers (:mod:`ouroboros.nets.diffusion`),
the settings (:mod:`ouroboros.targets.diffusion_settings`).
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ouroboros import data as D
from ouroboros import io
from ouroboros import judge as J
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.diffusion_data import KINDS, DataKind, Images, Points, make_data_kind
from ouroboros.targets.diffusion_settings import PARAMS, TEST_SETTINGS
from ouroboros.targets.torch_base import TorchTarget

log = logging.getLogger("ouroboros")
EVAL_SEED = 20240307  # fixed timesteps and noise of the denoising-loss scores: every generation is scored alike


class DiffusionTarget(Curatable, MlflowFlavor, TorchTarget):
    name = "diffusion"
    headline = "fd_judge"
    test_settings = TEST_SETTINGS
    display = "diffusion target"
    max_block = None  # array state: one generation per job (default) or blocks
    params_schema = PARAMS
    reference_settings = ("judge_epochs", "eval_size")
    mlflow_requirements = ["torch", "diffusers", "numpy", "pandas", "scikit-learn", "mlflow"]
    default_metric_data = "samples"
    metric_data = {"denoise_real": "real", "kl_truth_model": "samples", "kl_model_truth": "samples",
                   "nll_real": "real"}
    DENOISE = {"denoise_real": "DDPM's simple loss (noise-prediction MSE per coordinate) on real test items, fixed noise"}
    #: every metric the target can report; :attr:`metrics` (per instance) holds its data kind's
    ALL_METRICS = {**DENOISE, **J.METRICS, **Points.metrics}
    metrics = {**DENOISE, **Images.metrics}
    units = {"class_entropy": "nats", "class_kl": "nats", "kl_truth_model": "nats", "kl_model_truth": "nats",
             "nll_real": "nats per point", "truth_nll_samples": "nats per point"}

    @classmethod
    def metrics_for(cls, params):
        return {**cls.DENOISE, **KINDS[params.get("data", "digits")].metrics}

    def __init__(self, **params):
        super().__init__(**params)
        #: what the items are (:mod:`ouroboros.targets.diffusion_data`): images or points, chosen once, here
        self.data_: DataKind = make_data_kind(self.p)
        self.metrics = self.metrics_for(self.p)
        self.curation_hooks = self.data_.curation_hooks

    # -- data --------------------------------------------------------------------
    @property
    def image_shape(self):
        return self.data_.image_shape

    @property
    def d(self) -> int:
        return self.data_.d

    def check_data(self, n: int) -> Optional[str]:
        p = self.p
        if p["steps"] > p["train_timesteps"]:
            return f"params.steps={p['steps']} exceeds params.train_timesteps={p['train_timesteps']}"
        if p["beta_start"] >= p["beta_end"]:
            return f"params.beta_start={p['beta_start']} must be below params.beta_end={p['beta_end']}"
        return self.data_.check(n)

    def real_data(self, rng, n, replicates):
        return self.data_.real_data(rng, n, replicates)

    def draw_real(self, rng, m, replicates):
        return self.data_.draw_real(rng, m, replicates)

    def reference(self, rng):
        """Images: the judge (trained on the real training split); points: the GMM target's fixed truth sample
        and tail radius."""
        return self.data_.reference(rng)

    def item_bytes(self):
        return self.data_.item_bytes()

    # -- costs (ouroboros.costs) ---------------------------------------------------------------
    def work(self, stage: str, n: int) -> float:
        """Items through the network: fit, train_steps times the batch (whatever n is); sample, n times the
        sampling steps; evaluate, the real test items' denoising scores and the (at most eval_max) samples."""
        p = self.p
        if stage == "fit":
            return float(p["train_steps"] * p["batch_size"])
        if stage == "sample":
            return float(n * p["steps"])
        return float(p["score_draws"] * 2000 + self.data_.eval_work(n))

    def probe_params(self) -> dict:
        return dict(self.params, train_steps=min(self.p["train_steps"], 5), judge_epochs=1)

    def probe_items(self, stage: str) -> int:
        return self.p["batch_size"] if stage == "fit" else min(self.p["sample_batch"], 200)

    # -- the network and the schedulers --------------------------------------------------------
    def _new_net(self):
        return self.data_.new_net()

    def train_scheduler(self):
        """diffusers' DDPMScheduler of the forward process (its betas and ``add_noise``)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=self.p["train_timesteps"], beta_schedule=self.p["beta_schedule"],
                             beta_start=self.p["beta_start"], beta_end=self.p["beta_end"],
                             clip_sample=self.data_.clip_sample, clip_sample_range=1.0)

    def sample_scheduler(self):
        """diffusers' DDIMScheduler over the same betas, set to ``steps`` steps."""
        from diffusers import DDIMScheduler

        sched = DDIMScheduler.from_config(self.train_scheduler().config)
        sched.set_timesteps(self.p["steps"])
        return sched

    def _to_model(self, x: np.ndarray):
        """Items -> the network's space (images 2x - 1 shaped (N, 1, s, s); points standardised)."""
        return self.data_.to_model(x, self.shift_, self.scale_)

    def _from_model(self, z) -> np.ndarray:
        return self.data_.from_model(z, self.shift_, self.scale_)

    # -- model -------------------------------------------------------------------
    def starts_from_previous(self) -> bool:
        return self.p["init"] == "previous"

    def _start(self):
        """The network the fit starts from: new, or generation t - 1's (``init: previous``), with its
        normalisation."""
        prev = self.previous_model()
        if prev is None:
            return self._new_net(), None
        return copy.deepcopy(prev.net_), (prev.shift_, prev.scale_)

    def _fit_items(self, data):
        x = D.items(data, 0)
        if len(x) == 0:
            raise ValueError("the training set is empty (after curation)")
        return x

    def _train(self, x, seed: int, device: str):
        """The DDPM loop (:func:`ouroboros.nets.diffusion.train_ddpm`) from :meth:`_start`'s network."""
        import torch

        from ouroboros.nets.diffusion import train_ddpm

        gen = torch.Generator().manual_seed(seed + 1)
        net, norm = self._start()
        self.shift_, self.scale_ = self.data_.normalisation(x, norm)
        p = self.p
        return train_ddpm(net, self._to_model(x).to(device), self.train_scheduler(), steps=p["train_steps"],
                          batch_size=p["batch_size"], lr=p["lr"], lr_schedule=p["lr_schedule"], ema=p["ema"],
                          amp=p["amp"], device=device, generator=gen, log=log)

    def sample(self, n, lam, rng):
        import torch

        from ouroboros.nets.diffusion import sample_ddim

        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        device = self._device()
        net = self.net_.to(device)
        try:
            out = sample_ddim(net, self.sample_scheduler(), n, self.data_.item_shape, lam=lam,
                              eta=1.0 if self.p["sampler"] == "ddpm" else 0.0, batch=self.p["sample_batch"],
                              generator=gen, device=device)
        finally:
            self.net_ = net.to("cpu")
        if not out:
            return self.data_.empty()
        return np.concatenate([self._from_model(z) for z in out])[None]

    def denoise_loss(self, x: np.ndarray, draws: Optional[int] = None) -> np.ndarray:
        """DDPM's simple loss of each item (N, ...) -> (N,): the noise-prediction MSE per coordinate, averaged over
        ``draws`` fixed (timestep, noise) pairs per item (the same for every model: a deterministic score)."""
        from ouroboros.nets.diffusion import denoise_loss

        return denoise_loss(self.net_, self._to_model(x), self.train_scheduler(), draws or self.p["score_draws"],
                            EVAL_SEED).numpy()

    # -- metrics -----------------------------------------------------------------
    def min_eval_items(self) -> int:
        """Points: the mixture metrics need ``eval_samples`` samples whatever the regime draws; images: what was
        drawn."""
        return self.data_.min_eval_items()

    def evaluate(self, samples, real, reference, gen0):
        x_gen = np.asarray(samples)[0]
        out = {"denoise_real": float(self.denoise_loss(real["test"][0]).mean())}
        return dict(out, **self.data_.score(x_gen, real, reference))

    # -- curation hooks ---------------------------------------------------------------------------
    def loglik(self, items):
        """Minus the denoising loss of each item under this model (a likelihood proxy; fixed noise)."""
        return -self.denoise_loss(D.items(items, 0))[None]

    def truth_logpdf(self, items):
        """Points: the truth's log-density."""
        return self.data_.truth_logpdf(items)

    def feature_dim(self):
        return self.d

    def judge_score(self, items, reference):
        """Images: the judge's confidence."""
        return J.judge_confidence(D.items(items, 0), reference)[None]

    def duplicates(self, items, settings, reference):
        """Images: near duplicates in the judge's feature space (``tolerance``; 0: identical images); points: the
        default Euclidean test."""
        return self.data_.duplicates(np.asarray(D.items(items, 0)), settings, reference)

    def correction_centres(self, k: int, reference) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centres in item space (C, d), their features (C, f), their classes (C,)) the correction moves towards
        (the data kind's :meth:`~ouroboros.targets.diffusion_data.DataKind.centres`; kept per reference)."""
        key = (k, id(reference))
        cached = getattr(self, "_centres", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        out = self.data_.centres(k, reference)
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
        feats, pred = self.data_.features_and_classes(x, reference)
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
        import torch

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

    def save_weights(self, directory: Path) -> None:
        """The state as plain arrays (``state.npz``: the network's state dict, the normalisation)."""
        io.save_npz(directory / "state.npz", **self.get_state())

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
        self.data_.write_sample_artifacts(samples, directory)

    def sample_artifacts(self, samples_dir: Path) -> list[Path]:
        return self.data_.sample_artifacts(samples_dir)
