"""VAE and LM training throughput against a minimal reference PyTorch loop of the same network, and LM
generation with the KV cache against recomputing the whole context at every token.

    .venv/bin/python benchmarks/throughput.py [--device cpu|cuda] [--sizes small,paper]

* VAE: ``VAETarget.fit`` (what a train job runs) in images per second, against a bare loop over the same
  ``VAENet`` (data on the device, ``randperm`` batches, Adam, the same loss, no logging);
* LM: ``ouroboros.nets.gpt.train_lm`` in tokens per second, against nanoGPT's loop over the same ``GPT``
  (random windows gathered on the device, AdamW, the same clipping and precision);
* KV cache: 256 new tokens per prompt sampled with the cache and by recomputing the full context.

``small`` are the default/lm-small studies' networks; ``paper`` the shumailov-vae/-lm ones (784-400-20 MLP
VAE, 6-layer 384-wide GPT).  Writes benchmarks/records/throughput-<device>.json; prints every ratio.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from ouroboros.nets.gpt import build_gpt, generate, train_lm  # noqa: E402
from ouroboros.nets.vae import VAEConfig, VAENet  # noqa: E402
from ouroboros.targets import make_target  # noqa: E402

VAE = {"small": dict(side=8, n=800, epochs=40, batch_size=128),      # digits, as the default study
       "paper": dict(side=28, n=8000, epochs=10, batch_size=128)}    # MNIST-sized, as shumailov-vae
LM = {"small": dict(vocab=1024, n_layer=2, n_head=4, n_embd=128, block=128, batch=32, steps=150),
      "paper": dict(vocab=8192, n_layer=6, n_head=6, n_embd=384, block=128, batch=64, steps=150)}
KV = {"small": dict(vocab=1024, n_layer=2, n_head=4, n_embd=128, prompts=64),
      "paper": dict(vocab=8192, n_layer=6, n_head=6, n_embd=384, prompts=256)}
NEW_TOKENS, PROMPT = 256, 32


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat=2):
    """Best of ``repeat`` runs (the first also warms up kernels and caches)."""
    best = math.inf
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


# -- VAE ---------------------------------------------------------------------------------------------
def vae_ours(size, device):
    c = VAE[size]
    data = "digits" if c["side"] == 8 else "mnist"
    target = make_target("vae", {"data": data, "decoder": "bernoulli", "epochs": c["epochs"],
                                 "batch_size": c["batch_size"], "device": device, "amp": False})
    x = (np.random.default_rng(0).random((1, c["n"], c["side"] ** 2)) < 0.3).astype(np.float32)
    return lambda: target.clone().fit(x, np.random.default_rng(1))


def vae_reference(size, device):
    c = VAE[size]
    x_dim = c["side"] ** 2
    hidden = max(64, round(400 * x_dim / 784))
    host = (np.random.default_rng(0).random((c["n"], x_dim)) < 0.3).astype(np.float32)

    def run():  # from the same host array as ours: the copy to the device is part of the work
        x = torch.as_tensor(host).to(device)
        torch.manual_seed(0)
        net = VAENet(VAEConfig(x_dim, c["side"], hidden, 20, "mlp")).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(c["epochs"]):
            perm = torch.randperm(c["n"], device=device)
            for i in range(0, c["n"], c["batch_size"]):
                xb = x[perm[i:i + c["batch_size"]]]
                out, mu, logvar = net(xb)
                rec = F.binary_cross_entropy_with_logits(out, xb, reduction="none").sum(1)
                loss = (rec + 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    return run


# -- LM ------------------------------------------------------------------------------------------------
def lm_net(c, device):
    torch.manual_seed(0)
    return build_gpt(c["vocab"], c["block"], c["n_layer"], c["n_head"], c["n_embd"]).to(device)


def lm_ours(size, device, amp):
    c = LM[size]
    stream = np.random.default_rng(0).integers(1, c["vocab"], 200_000)
    return lambda: train_lm(lm_net(c, device), stream, steps=c["steps"], batch_size=c["batch"], lr=1e-3, warmup=10,
                            min_lr=1e-4, weight_decay=0.1, grad_clip=1.0, device=device, amp=amp, seed=0)


def lm_reference(size, device, amp):
    """nanoGPT's train.py loop, reduced to the same work."""
    c = LM[size]
    data = torch.randint(1, c["vocab"], (200_000,), device=device)
    T = c["block"]

    def run():
        net = lm_net(c, device).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1,
                                fused=device == "cuda")  # nanoGPT: fused AdamW on CUDA
        for _ in range(c["steps"]):
            ix = torch.randint(len(data) - T, (c["batch"],), device=device)
            xy = data[ix[:, None] + torch.arange(T + 1, device=device)]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
                logits = net(xy[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), xy[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    return run


def kv_cache(size, device, amp):
    c = KV[size]
    torch.manual_seed(0)
    net = build_gpt(c["vocab"], PROMPT + NEW_TOKENS, c["n_layer"], c["n_head"], c["n_embd"]).to(device).eval()
    prompts = torch.randint(1, c["vocab"], (c["prompts"], PROMPT), device=device)
    gen = torch.Generator(device=device)
    cached = timed(lambda: generate(net, prompts, NEW_TOKENS, generator=gen.manual_seed(0), amp=amp), device)
    full = timed(lambda: generate(net, prompts, NEW_TOKENS, generator=gen.manual_seed(0), use_cache=False, amp=amp),
                 device, repeat=1)
    tokens = c["prompts"] * NEW_TOKENS
    return {"prompts": c["prompts"], "new_tokens": NEW_TOKENS, "kv_cache_s": round(cached, 3),
            "recompute_s": round(full, 3), "kv_cache_tokens_per_s": round(tokens / cached),
            "recompute_tokens_per_s": round(tokens / full), "speedup": round(full / cached, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", default="small,paper")
    args = ap.parse_args()
    dev = args.device
    amp = dev == "cuda"
    if dev == "cpu":  # the same networks with less work, so a CPU run takes minutes: ratios, not totals, compare
        VAE["paper"].update(epochs=2)
        LM["small"].update(steps=40)
        LM["paper"].update(steps=8)
        KV["small"].update(prompts=16)
        KV["paper"].update(prompts=4)
    out = {"device": dev, "torch_threads": torch.get_num_threads(), "amp_bf16": amp}
    for size in args.sizes.split(","):
        c = VAE[size]
        images = c["n"] * c["epochs"]
        ours, ref = timed(vae_ours(size, dev), dev, repeat=3), timed(vae_reference(size, dev), dev, repeat=3)
        out[f"vae_{size}"] = {"images": images, "ours_images_per_s": round(images / ours),
                              "reference_images_per_s": round(images / ref), "ratio": round(ref / ours, 2)}
        print(f"VAE {size}: ours {images / ours:,.0f} images/s, reference {images / ref:,.0f} images/s "
              f"(ratio {ref / ours:.2f}; target >= 1.0)")
        c = LM[size]
        tokens = c["steps"] * c["batch"] * c["block"]
        ours, ref = timed(lm_ours(size, dev, amp), dev, repeat=3), timed(lm_reference(size, dev, amp), dev, repeat=3)
        out[f"lm_{size}"] = {"tokens": tokens, "ours_tokens_per_s": round(tokens / ours),
                             "reference_tokens_per_s": round(tokens / ref), "ratio": round(ref / ours, 2)}
        print(f"LM {size}: ours {tokens / ours:,.0f} tokens/s, reference {tokens / ref:,.0f} tokens/s "
              f"(ratio {ref / ours:.2f}; target >= 1.0)")
        kv = kv_cache(size, dev, amp)
        out[f"kv_{size}"] = kv
        print(f"KV cache {size}: {kv['kv_cache_tokens_per_s']:,} tokens/s vs recompute {kv['recompute_tokens_per_s']:,} "
              f"at {NEW_TOKENS} new tokens ({kv['speedup']:.1f}x; target >= 5x)")
    save(f"throughput-{dev}", out)


if __name__ == "__main__":
    main()
