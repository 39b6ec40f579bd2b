"""The VAE's networks: :class:`VAENet` (MLP as Shumailov et al.'s 784-400-20, or a small conv net) built
from a :class:`VAEConfig`, and the :class:`Judge` classifier the metrics use.

Imported only by jobs that train or run the VAE (``ouroboros.targets.vae`` imports it lazily).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class VAEConfig:
    x_dim: int  # pixels
    side: int  # image side (square images)
    hidden: int
    latent: int = 20
    arch: str = "mlp"  # mlp | conv


class VAENet(nn.Module):
    """Encoder q(z|x) = N(mu, diag exp(logvar)); decoder gives pixel logits (Bernoulli) or means."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        side, hidden, latent = config.side, config.hidden, config.latent
        self.latent, self.side, self.arch = latent, side, config.arch
        if config.arch == "conv":
            c, s4 = 32, math.ceil(side / 4)
            self.enc_body = nn.Sequential(nn.Unflatten(1, (1, side, side)), nn.Conv2d(1, c, 3, 2, 1), nn.ReLU(),
                                          nn.Conv2d(c, 2 * c, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                                          nn.Linear(2 * c * s4 ** 2, hidden), nn.ReLU())
            self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 2 * c * s4 * s4), nn.ReLU(),
                                     nn.Unflatten(1, (2 * c, s4, s4)),
                                     nn.ConvTranspose2d(2 * c, c, 3, 2, 1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(c, 1, 3, 2, 1, output_padding=1), nn.Flatten())
        else:
            self.enc_body = nn.Sequential(nn.Linear(config.x_dim, hidden), nn.ReLU())
            self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, config.x_dim))
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)

    def encode(self, x):
        h = self.enc_body(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.dec(z)[:, : self.side * self.side]

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


class Judge(nn.Sequential):
    """MLP classifier x -> 10 class logits; its first four layers give 64 penultimate features."""

    def __init__(self, x_dim: int, classes: int = 10):
        super().__init__(nn.Linear(x_dim, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, classes))

    def apply_to(self, x):
        """(penultimate features, class probabilities) of images x (N, pixels), without gradients."""
        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float32)
            feats = xt
            for layer in list(self)[:4]:
                feats = layer(feats)
            probs = torch.softmax(self[4](feats), dim=1)
        return feats.numpy().astype("float64"), probs.numpy().astype("float64")
