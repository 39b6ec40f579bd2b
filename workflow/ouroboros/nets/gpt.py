"""A small decoder-only transformer (nanoGPT style) and its training and decoding loops.

:class:`GPT` built from a :class:`GPTConfig`: learned positions, pre-norm
blocks, attention with ``torch.nn.functional.scaled_dot_product_attention``,
tied embeddings.  ``forward(idx, cache=None)``: with a cache (one dict per layer,
from :meth:`GPT.new_cache`) the keys and values of ``idx`` are appended to it and
positions continue after the cached ones, so generation feeds one new token per
step.  :func:`train_lm` (AdamW, linear warmup then cosine decay, gradient
clipping, bf16 autocast on GPU), :func:`generate` (temperature, top-k, top-p,
repetition penalty, key/value cache), :func:`beam_search`, and the likelihood
helpers :func:`stream_nll` and :func:`sequence_ppl`.

Imported only by jobs that train or run the language model (``ouroboros.targets.lm``
imports it lazily), so a Gaussian job never imports torch.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger("ouroboros")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int = 128  # context length
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0


class SelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, cache=None):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (y.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for y in (q, k, v))
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        drop = self.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        elif t == 1:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        else:  # several new tokens after a cached prefix: query i sees keys up to past + i
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        e = config.n_embd
        self.ln1 = nn.LayerNorm(e)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(e)
        self.mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.GELU(), nn.Linear(4 * e, e), nn.Dropout(config.dropout))

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.block_size = config.block_size
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # tied
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def new_cache(self):
        return [{} for _ in self.blocks]

    def forward(self, idx, cache=None):
        past = cache[0]["k"].shape[2] if cache is not None and "k" in cache[0] else 0
        t = idx.shape[1]
        if past + t > self.block_size:
            raise ValueError(f"sequence of {past + t} tokens exceeds the context length {self.block_size}")
        pos = torch.arange(past, past + t, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[i])
        return self.head(self.ln_f(x))


def build_gpt(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, dropout: float = 0.0) -> GPT:
    return GPT(GPTConfig(vocab_size, block_size, n_layer, n_head, n_embd, dropout))


def lr_at(step: int, steps: int, lr: float, warmup: int, min_lr: float) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if steps <= warmup + 1:
        return lr
    frac = (step - warmup) / (steps - 1 - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * frac))


def train_lm(net, stream: np.ndarray, *, steps: int, batch_size: int, lr: float, warmup: int, min_lr: float,
             weight_decay: float, grad_clip: float, device: str, amp: bool, seed: int, log_every: int = 50,
             valid: Optional[np.ndarray] = None) -> list[float]:
    """Train on random windows of a token stream; returns the loss of every step."""
    T_ = net.block_size
    if len(stream) < T_ + 1:
        raise ValueError(f"the training text has {len(stream)} tokens, fewer than the context length + 1 ({T_ + 1})")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # the token stream lives on the device; windows are gathered there (no copy per step), and the loss is
    # read back only every log_every steps (no host sync per step)
    data = torch.as_tensor(stream.astype(np.int64)).to(device)
    offsets = torch.arange(T_ + 1, device=device)
    # every step's window starts drawn up front and copied once (a copy from pageable host memory at each
    # step would make the GPU wait for the host at every step)
    all_starts = torch.as_tensor(rng.integers(0, len(stream) - T_, size=(steps, batch_size))).to(device)
    decay = [p for n, p in net.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in net.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), fused=str(device).startswith("cuda"))  # fused on GPU, as nanoGPT
    net.train()
    losses, pending = [], []
    t0 = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup, min_lr)
        chunk = data[all_starts[step][:, None] + offsets]
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            logits = net(chunk[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        pending.append(loss.detach())
        if (step + 1) % log_every == 0 or step == steps - 1:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending = []
            recent = losses[-log_every:]
            log.info("step %d/%d loss %.4f lr %.2e (%.1fs)", step + 1, steps, sum(recent) / len(recent),
                     opt.param_groups[0]["lr"], time.perf_counter() - t0)
    net.eval()
    if valid is not None and len(valid) > T_:
        log.info("validation: %.4f nats per token", stream_nll(net, valid, device)[0])
    return losses


def stream_nll(net, stream: np.ndarray, device: str = "cpu", batch: int = 64, max_tokens: int = 0) -> tuple[float, int]:
    """(mean negative log-likelihood per predicted token, tokens predicted) over a token stream.

    The stream is cut into windows of context length + 1 that overlap by one
    token, so every token after the first is predicted exactly once.
    """
    stream = np.asarray(stream, dtype=np.int64)
    if max_tokens:
        stream = stream[: max_tokens + 1]
    T_ = net.block_size
    starts = list(range(0, max(len(stream) - 1, 0), T_))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        nll, mask = token_nll(net, [stream[s: s + T_ + 1] for s in starts[i:i + batch]], device)
        total += float(nll.sum())
        count += int(mask.sum())
    return (total / count if count else math.nan), count


def token_nll(net, rows, device: str = "cpu"):
    """(NLL of every predicted token (B, W - 1), zero past each row's end; mask of real positions) for
    token rows of different lengths, each token predicted from the ones before it in its row."""
    width = max(len(r) for r in rows)
    x = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width - 1)
    for j, r in enumerate(rows):
        x[j, : len(r)] = torch.as_tensor(np.asarray(r, dtype=np.int64))
        mask[j, : len(r) - 1] = 1
    x, mask = x.to(device), mask.to(device)
    with torch.no_grad():
        logits = net(x[:, :-1]).float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
    return nll * mask, mask


def sequence_ppl(net, seqs, device: str = "cpu", batch: int = 128) -> np.ndarray:
    """Per-sequence perplexity exp(mean NLL of the sequence's tokens), each read after an end-of-text token.

    Sequences longer than the context length are scored on their first ``block_size`` tokens.
    """
    T_ = net.block_size
    out = np.full(len(seqs), np.nan)
    for i in range(0, len(seqs), batch):
        rows = [[0] + list(s)[:T_] for s in seqs[i:i + batch]]
        if max(len(r) for r in rows) < 2:
            continue
        nll, mask = token_nll(net, rows, device)
        counts = mask.sum(1)
        ppl = torch.exp(nll.sum(1) / counts.clamp(min=1)).cpu().numpy()
        ppl[counts.cpu().numpy() == 0] = np.nan
        out[i:i + len(rows)] = ppl
    return out


def next_token(logits, history, *, temperature: float, top_k: int, top_p: float, repetition_penalty: float,
               generator=None, banned: tuple[int, ...] = ()):
    """Pick the next token of each row of ``logits`` (B, vocab) given the tokens so far (B, t)."""
    logits = logits.float().clone()
    if repetition_penalty != 1.0 and history is not None and history.shape[1]:
        seen = torch.gather(logits, 1, history)
        logits.scatter_(1, history, torch.where(seen > 0, seen / repetition_penalty, seen * repetition_penalty))
    for b in banned:
        logits[:, b] = -float("inf")
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, -float("inf"))
        logits = torch.full_like(logits, -float("inf")).scatter(1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def generate(net, prompts, max_new: int, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, generator=None, use_cache: bool = True, banned: tuple[int, ...] = (0,),
             amp: bool = False):
    """Continue every row of ``prompts`` (B, P) by ``max_new`` tokens; returns the new tokens (B, max_new)."""
    if prompts.shape[1] + max_new > net.block_size + 1:
        raise ValueError(f"prompt ({prompts.shape[1]}) + continuation ({max_new}) exceed the context length {net.block_size}")
    device = prompts.device
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty,
              generator=generator, banned=banned)
    with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
        cache = net.new_cache() if use_cache else None
        seq = prompts
        logits = net(prompts, cache)[:, -1]
        for i in range(max_new):
            tok = next_token(logits, seq, **kw).to(device)
            seq = torch.cat([seq, tok[:, None]], dim=1)
            if i == max_new - 1:
                break
            logits = net(tok[:, None], cache)[:, -1] if use_cache else net(seq)[:, -1]
    return seq[:, prompts.shape[1]:]


def beam_search(net, prompts, max_new: int, beams: int = 5, banned: tuple[int, ...] = (0,), amp: bool = False):
    """The most probable continuation of each prompt found by beam search (Shumailov et al. used 5 beams).

    Every row of ``prompts`` (B, P) keeps ``beams`` hypotheses ranked by total log-probability; all have
    the same length, so no length penalty is needed.  Returns the best continuation per row (B, max_new).
    """
    if prompts.shape[1] + max_new > net.block_size + 1:
        raise ValueError(f"prompt ({prompts.shape[1]}) + continuation ({max_new}) exceed the context length {net.block_size}")
    b, device = prompts.shape[0], prompts.device
    with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
        cache = net.new_cache()
        x = prompts.repeat_interleave(beams, dim=0)  # (B*K, P)
        logits = net(x, cache)[:, -1]
        score = torch.full((b, beams), -float("inf"), device=device)
        score[:, 0] = 0.0  # the K copies of a prompt are one hypothesis at first
        out = torch.zeros(b * beams, 0, dtype=torch.long, device=device)
        for i in range(max_new):
            logp = torch.log_softmax(logits.float(), dim=-1)
            for t in banned:
                logp[:, t] = -float("inf")
            vocab = logp.shape[-1]
            total = (score.reshape(-1, 1) + logp).reshape(b, beams * vocab)
            score, flat = torch.topk(total, beams, dim=-1)  # (B, K)
            parent = (flat // vocab + torch.arange(b, device=device)[:, None] * beams).reshape(-1)
            tok = (flat % vocab).reshape(-1)
            out = torch.cat([out[parent], tok[:, None]], dim=1)
            if i == max_new - 1:
                break
            for layer in cache:
                layer["k"], layer["v"] = layer["k"][parent], layer["v"][parent]
            logits = net(tok[:, None], cache)[:, -1]
    best = score.argmax(dim=-1) + torch.arange(b, device=device) * beams
    return out[best]


