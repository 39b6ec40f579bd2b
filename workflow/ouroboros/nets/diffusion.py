"""The diffusion target's networks, from the field's library ``diffusers``: a small :class:`UNet2DModel` for
images and :class:`PointDenoiser`, an MLP noise predictor for points with diffusers' sinusoidal timestep
embedding.  Both are called as ``net(x_t, t)`` and return the predicted noise (a tensor shaped like x_t).

Imported only by jobs that train or run the diffusion target.
"""
from __future__ import annotations

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
