"""The VAE's networks: :class:`VAENet` (MLP as Shumailov et al.'s 784-400-20, or a small conv net) built
from a :class:`VAEConfig`, its training loop (:func:`train_vae`), and the :class:`Judge` classifier the
metrics use.

Imported only by jobs that train or run the VAE (``ouroboros.targets.vae`` imports it lazily).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ouroboros.torchdev import autocast


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


def train_vae(net, x, recon_nll, *, epochs: int, batch_size: int, lr: float, amp: bool = False, device: str = "cpu",
              generator=None, log=None) -> tuple[nn.Module, list[tuple[int, float]]]:
    """Adam on the negative ELBO (``recon_nll(out, x)`` per image plus the KL to N(0, I)), ``epochs`` shuffled
    passes (``generator``) in batches of ``batch_size``.  The whole set sits on the device once; the batch losses
    stay there and are read once per epoch (no host sync per step).  Returns (the network, (epoch, the mean loss
    per image))."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt = torch.as_tensor(x, dtype=torch.float32).to(device)
    n, bs = len(xt), batch_size
    amp = amp and device == "cuda"
    sizes = torch.tensor([min(bs, n - i) for i in range(0, n, bs)], dtype=torch.float64, device=device)
    curve = []
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=generator).to(device)
        losses = []
        net.train()
        for i in range(0, n, bs):
            xb = xt[perm[i:i + bs]]
            with autocast(device, amp):
                out, mu, logvar = net(xb)
            if amp:
                out, mu, logvar = out.float(), mu.float(), logvar.float()
            loss = (recon_nll(out, xb) + 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        total = float((torch.stack(losses).double() * sizes).sum())  # the summed loss of every image
        if log is not None:
            log.info("epoch %d/%d loss %.4f (nats per image, %d images, %s)", epoch + 1, epochs, total / n, n, device)
        curve.append((epoch + 1, total / n))
    return net, curve
