"""Diffusion throughput: the diffusion target's training and sampling against bare diffusers loops.

    .venv/bin/python benchmarks/diffusion.py [--data digits|mnist] [--device cpu|cuda] [--steps 60]
                                             [--batch 128] [--images 500] [--repeat 3]

Training: ``DiffusionTarget.fit`` (what a train job runs: batches drawn with replacement, DDPMScheduler.add_noise,
the UNet, MSE on the noise, AdamW) against the same loop written directly against diffusers (the same
UNet2DModel, scheduler, optimizer and batch), in training images per second.  Sampling: the target's ``sample``
(DDIMScheduler, eta 0 for DDIM and eta 1 with given noise for DDPM) against a bare loop calling
``scheduler.step`` (DDIMScheduler / DDPMScheduler) directly, in images per second, at the target's steps (50).
Best of ``--repeat`` each, the two alternating; the bare training loop is also timed against itself (``noise``:
the ratio two identical loops show on this machine, the floor under which a ratio says nothing).  On the CPU
torch runs ``--threads`` threads (1, as each job of the workflow does by default).  Writes benchmarks/records/diffusion-<data>-<device>.json.
Timings are measurements, never test verdicts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_pair, save  # noqa: E402

from ouroboros.targets import make_target  # noqa: E402


def plain_train(target, x, *, steps, batch, lr, device):
    """The bare diffusers training loop of the same UNet and scheduler."""
    net = target._new_net().to(device).train()
    sched = target.train_scheduler()
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    xt = torch.as_tensor(2 * x - 1).reshape(-1, *target.data_.item_shape).to(device)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (batch,), generator=gen).to(device)
        noise = torch.randn((batch,) + tuple(xt.shape[1:]), generator=gen).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=gen).to(device)
        loss = torch.nn.functional.mse_loss(net.unet(sched.add_noise(xt[idx], noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def plain_sample(model, n, sampler, device):
    """A bare sampling loop: DDIMScheduler (eta 0) or DDPMScheduler, ``scheduler.step`` on the UNet's output."""
    from diffusers import DDIMScheduler, DDPMScheduler

    cls = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
    sched = cls.from_config(model.train_scheduler().config)
    sched.set_timesteps(model.p["steps"])
    gen = torch.Generator().manual_seed(0)
    unet = model.net_.unet.to(device)
    with torch.no_grad():
        x = torch.randn((n, *model.data_.item_shape), generator=gen).to(device)
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, generator=gen if sampler == "ddpm" else None).prev_sample
    return x.cpu()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits", choices=["digits", "mnist"])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = {"data": args.data, "device": args.device, "train_steps": args.steps, "batch_size": args.batch,
              "channels": [16, 32] if args.data == "digits" else [32, 64, 64], "steps": 50}
    if args.data == "mnist":
        params["root"] = args.root
    target = make_target("diffusion", params)
    real = target.real_data(np.random.default_rng(0), min(1000, args.images * 2), 1)
    x = real["train"][0]
    holder = {}

    def ours_train():
        holder["model"] = target.clone().fit(real["train"], np.random.default_rng(0))

    def bare_train():
        plain_train(target, x, steps=args.steps, batch=args.batch, lr=1e-3, device=args.device)

    a, b = best_pair(ours_train, bare_train, args.repeat)
    b1, b2 = best_pair(bare_train, bare_train, args.repeat)
    images = args.steps * args.batch
    record = {"data": args.data, "device": args.device, "threads": args.threads, "unet_channels": params["channels"],
              "parameters": int(sum(p.numel() for p in target._new_net().parameters())),
              "train": {"steps": args.steps, "batch": args.batch, "ours_images_per_s": images / a,
                        "bare_images_per_s": images / b, "ratio": b / a, "noise": b2 / b1}}
    print(f"training: {images / a:.0f} vs {images / b:.0f} images/s (ratio {b / a:.3f}; bare vs bare {b2 / b1:.3f})")
    model = holder["model"]
    for sampler in ("ddim", "ddpm"):
        m = make_target("diffusion", dict(params, sampler=sampler)).set_state(model.get_state())
        a, b = best_pair(lambda: m.sample(args.images, 1.0, np.random.default_rng(0)),
                         lambda: plain_sample(m, args.images, sampler, args.device), args.repeat)
        record[f"sample_{sampler}"] = {"steps": 50, "images": args.images, "ours_images_per_s": args.images / a,
                                       "bare_images_per_s": args.images / b, "ratio": b / a}
        print(f"sampling {sampler}: {args.images / a:.0f} vs {args.images / b:.0f} images/s (ratio {b / a:.3f})")
    save(f"diffusion-{args.data}-{args.device}", record)


if __name__ == "__main__":
    main()
