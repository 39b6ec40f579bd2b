"""The diffusion target's networks and loops, on the field's library ``diffusers``: a small :class:`UNet2DModel`
for images and :class:`PointDenoiser`, an MLP noise predictor for points with diffusers' sinusoidal timestep
embedding, both called as ``net(x_t, t)`` and returning the predicted noise (a tensor shaped like x_t); the DDPM
training loop (:func:`train_ddpm`), the DDIM/DDPM sampler with a sampling bias (:func:`sample_ddim`) and the
denoising score (:func:`denoise_loss`).

Imported only by jobs that train or run the diffusion target.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from diffusers import UNet2DModel
from diffusers.models.embeddings import TimestepEmbedding, Timesteps


@dataclass(frozen=True)
class UNetConfig:
    side: int
    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    norm_groups: int = 8


class ImageDenoiser(nn.Module):
    """A diffusers UNet2DModel (no attention: DownBlock2D / UpBlock2D) on (N, 1, side, side) images."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        depth = len(config.channels)
        self.unet = UNet2DModel(sample_size=config.side, in_channels=1, out_channels=1,
                                block_out_channels=tuple(config.channels), layers_per_block=config.layers_per_block,
                                down_block_types=("DownBlock2D",) * depth, up_block_types=("UpBlock2D",) * depth,
                                norm_num_groups=config.norm_groups)

    def forward(self, x, t):
        return self.unet(x, t).sample


@dataclass(frozen=True)
class MLPConfig:
    d: int
    hidden: int = 128
    depth: int = 3


class PointDenoiser(nn.Module):
    """eps(x_t, t) for points (N, d): [x_t, embed(t)] through ``depth`` SiLU layers of width ``hidden``."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        h = config.hidden
        self.time_proj = Timesteps(h, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(h, h)
        layers, width = [], config.d + h
        for _ in range(config.depth):
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(h, config.d)

    def forward(self, x, t):
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:  # sampling: one timestep for the batch, embedded once
            emb = self.time_embed(self.time_proj(t[None]).to(x.dtype)).expand(x.shape[0], -1)
        else:
            emb = self.time_embed(self.time_proj(t).to(x.dtype))
        return self.out(self.body(torch.cat([x, emb], dim=1)))


# -- the DDPM loop, the sampler and the denoising score --------------------------------------------------------
def train_ddpm(net, x0, sched, *, steps: int, batch_size: int, lr: float, lr_schedule: str = "constant",
               ema: float = 0.0, amp: bool = False, device: str = "cpu", generator=None,
               log=None) -> tuple[nn.Module, list[tuple[int, float]]]:
    """DDPM's simple loss (Ho et al. 2020): ``steps`` AdamW steps on batches of ``batch_size`` items of ``x0``
    (N, ...; on ``device``) drawn with replacement, each noised by ``sched.add_noise`` at a timestep uniform over
    the scheduler's; the loss is the noise prediction's MSE.  ``lr_schedule``: constant, or cosine decay to 0;
    ``ema``: the decay of an exponential moving average of the weights, which is then the model (0: off); every
    draw from ``generator``.  Returns (the trained network, or its EMA; (step, mean loss) about 20 times)."""
    net = net.to(device).train()
    average = copy.deepcopy(net).eval() if ema else None
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    decay = (lambda i: 0.5 * (1 + math.cos(math.pi * i / steps))) if lr_schedule == "cosine" else None
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, decay) if decay else None
    autocast = ((lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if amp and str(device).startswith("cuda")
                else contextlib.nullcontext)
    n, every = len(x0), max(1, steps // 20)
    losses, curve = [], []
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        noise = torch.randn((batch_size,) + tuple(x0.shape[1:]), generator=generator).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=generator).to(device)
        noisy = sched.add_noise(x0[idx.to(device)], noise, t)
        with autocast():
            pred = net(noisy, t)
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if lr_sched is not None:
            lr_sched.step()
        if average is not None:
            with torch.no_grad():
                for pe, pn in zip(average.parameters(), net.parameters()):
                    pe.lerp_(pn, 1 - ema)
        losses.append(loss.detach())
        if step % every == 0 or step == steps:
            mean = float(torch.stack(losses).mean())
            losses = []
            curve.append((step, mean))
            if log is not None:
                log.info("step %d/%d loss %.4f (%d items, %s)", step, steps, mean, n, device)
    return (average if average is not None else net), curve


def sample_ddim(net, sched, n: int, item_shape: tuple[int, ...], *, lam: float = 1.0, eta: float = 0.0,
                batch: int = 1000, generator=None, device: str = "cpu") -> list:
    """n draws by diffusers' DDIMScheduler (``sched``, its timesteps set): eta = 0 is DDIM, eta = 1 DDPM's
    ancestral sampler; x_T and every step's noise drawn from N(0, lam I) (the sampling bias).  Returns the
    batches (CPU tensors in the network's space)."""
    root = math.sqrt(lam)
    out = []
    with torch.no_grad():
        for start in range(0, n, batch):
            m = min(batch, n - start)
            x = (root * torch.randn((m,) + tuple(item_shape), generator=generator)).to(device)
            for t in sched.timesteps:
                eps = net(x, t.to(device)).float()
                noise = (root * torch.randn((m,) + tuple(item_shape), generator=generator)).to(device) if eta else None
                x = sched.step(eps, t, x, eta=eta, use_clipped_model_output=True, variance_noise=noise).prev_sample
            out.append(x.cpu())
    return out


def denoise_loss(net, x0, sched, draws: int, seed: int, chunk: int = 1000):
    """DDPM's simple loss of each item of ``x0`` (N, ...) -> (N,) float64: the noise prediction's MSE per
    coordinate, averaged over ``draws`` (timestep, noise) pairs per item drawn from ``seed`` (the same for every
    model: a deterministic score)."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.zeros(len(x0), dtype=torch.float64)
    with torch.no_grad():
        for _ in range(draws):
            noise = torch.randn(x0.shape, generator=gen)
            t = torch.randint(0, sched.config.num_train_timesteps, (len(x0),), generator=gen)
            for i in range(0, len(x0), chunk):
                sl = slice(i, i + chunk)
                pred = net(sched.add_noise(x0[sl], noise[sl], t[sl]), t[sl])
                out[sl] += ((pred - noise[sl]) ** 2).flatten(1).mean(1).double()
    return out / draws
