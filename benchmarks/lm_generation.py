"""LM generation and training throughput: KV cache vs none, sampling vs beam search, CPU or GPU.

    .venv/bin/python benchmarks/lm_generation.py [--device cpu|cuda] [--prompts 256] [--size small|gpu]

``small`` is lm-small.yaml's model (2 layers, 128 wide, BPE 1024); ``gpu`` is shumailov-lm.yaml's
(6 layers, 384 wide, BPE 8192; its vocabulary is trained on the pydoc corpus here).  Prints tokens per
second and writes benchmarks/out/lm_generation.json.  Timings are measurements, never test verdicts.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ouroboros.targets import make_target
from ouroboros.nets.gpt import beam_search, build_gpt, generate

SIZES = {
    "small": dict(tokenizer="bpe", vocab_size=1024, n_layer=2, n_head=4, n_embd=128, block_size=128),
    "gpu": dict(tokenizer="bpe", vocab_size=8192, n_layer=6, n_head=6, n_embd=384, block_size=128),
}


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    args = ap.parse_args()
    cfg = SIZES[args.size]
    target = make_target("lm", dict(cfg, device=args.device))
    vocab = target.tokenizer.vocab_size
    torch.manual_seed(0)
    net = build_gpt(vocab, cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"]).to(args.device).eval()
    amp = args.device == "cuda"
    prompts = torch.as_tensor(target._prompts(args.prompts, np.random.default_rng(0)), device=args.device)
    new = 64
    out = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "size": args.size, "prompts": args.prompts, "new_tokens": new,
           "params_M": sum(p.numel() for p in net.parameters()) / 1e6}
    gen = torch.Generator(device=args.device)
    for name, fn in {
        "sample_kv_cache": lambda: generate(net, prompts, new, generator=gen.manual_seed(0), amp=amp),
        "sample_no_cache": lambda: generate(net, prompts, new, generator=gen.manual_seed(0), use_cache=False, amp=amp),
        "beam5_kv_cache": lambda: beam_search(net, prompts, new, beams=5, amp=amp),
    }.items():
        s = timed(fn, repeat=2)
        out[f"{name}_s"] = round(s, 3)
        out[f"{name}_tokens_per_s"] = round(args.prompts * new / s)
        print(f"{name:>16}: {s:7.2f} s for {args.prompts} x {new} tokens = {args.prompts * new / s:,.0f} tokens/s")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randint(1, vocab, (32, cfg["block_size"] + 1), device=args.device)

    def step():
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            logits = net.train()(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    s = timed(lambda: [step() for _ in range(10)]) / 10
    out["train_step_s"] = round(s, 4)
    out["train_tokens_per_s"] = round(32 * cfg["block_size"] / s)
    print(f"{'train step':>16}: {s * 1000:7.1f} ms for 32 x {cfg['block_size']} tokens = {32 * cfg['block_size'] / s:,.0f} tokens/s")
    dest = Path(__file__).resolve().parent / "out" / "lm_generation.json"
    dest.parent.mkdir(exist_ok=True)
    runs = json.loads(dest.read_text()) if dest.is_file() else []
    dest.write_text(json.dumps(runs + [out], indent=1))


if __name__ == "__main__":
    main()
