"""A small decoder-only transformer language model, retrained on its own text.

The text experiment of Shumailov et al. (Nature 2024): the real training text
is cut into blocks of ``seq_len`` tokens; generation 0 trains on n of them;
every generation then writes n continuations of ``seq_len`` tokens, each
prompted by ``prompt_len`` tokens of real training text (or unconditionally,
from the end-of-text token), and the next generation trains on that text per
the regime (``replace``: the synthetic text only; ``mix`` rho = 0.1: 10% real
blocks kept).  Items are strings; a generation's synthetic corpus is
``samples/samples.txt``, one sample per line.

The model follows nanoGPT: learned positions, pre-norm blocks, attention with
``torch.nn.functional.scaled_dot_product_attention``, tied embeddings; AdamW
with linear warmup and cosine decay, gradient clipping; bf16 autocast on GPU.
Generation is batched with a key/value cache and supports temperature (times
the sampling bias lam; 0 is greedy), top-k, top-p and a repetition penalty.
Training is from scratch each generation (the paper fine-tuned a pretrained
OPT-125m; a CPU cannot) and deterministic on a CPU for a seed.

Saved as ``model.pt`` (a state dict, loaded with ``weights_only=True``),
``target.json`` (hyperparameters) and ``tokenizer.json``.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np

from workflow import io
from workflow import text as T
from workflow.regimes import Regime
from workflow.targets.base import Target, settings_schema

log = logging.getLogger("ouroboros")


def _torch():
    import torch

    return torch


# -- the model ---------------------------------------------------------------------------
def build_gpt(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, dropout: float = 0.0):
    """A nanoGPT-style decoder; ``forward(idx, cache=None)`` returns logits (B, T, vocab).

    ``cache`` is a list with one dict per layer (from :meth:`new_cache`); when
    given, keys and values of ``idx`` are appended to it and positions continue
    after the cached ones, so generation feeds one new token per step.
    """
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(n_embd, 3 * n_embd)
            self.proj = nn.Linear(n_embd, n_embd)

        def forward(self, x, cache=None):
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(c, dim=2)
            q, k, v = (y.view(b, t, n_head, c // n_head).transpose(1, 2) for y in (q, k, v))
            past = 0
            if cache is not None:
                if "k" in cache:
                    past = cache["k"].shape[2]
                    k = torch.cat([cache["k"], k], dim=2)
                    v = torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
            drop = dropout if self.training else 0.0
            if past == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
            elif t == 1:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
            else:  # several new tokens after a cached prefix: query i sees keys up to past + i
                mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
            return self.proj(y.transpose(1, 2).reshape(b, t, c))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(n_embd)
            self.attn = SelfAttention()
            self.ln2 = nn.LayerNorm(n_embd)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd),
                                     nn.Dropout(dropout))

        def forward(self, x, cache=None):
            x = x + self.attn(self.ln1(x), cache)
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.block_size = block_size
            self.wte = nn.Embedding(vocab_size, n_embd)
            self.wpe = nn.Embedding(block_size, n_embd)
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)
            self.head = nn.Linear(n_embd, vocab_size, bias=False)
            self.head.weight = self.wte.weight  # tied
            self.apply(self._init)
            for name, p in self.named_parameters():
                if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

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

    return GPT()


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
    torch = _torch()
    F = torch.nn.functional
    T_ = net.block_size
    if len(stream) < T_ + 1:
        raise ValueError(f"the training text has {len(stream)} tokens, fewer than the context length + 1 ({T_ + 1})")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = torch.as_tensor(stream.astype(np.int64))
    offsets = torch.arange(T_ + 1)
    decay = [p for n, p in net.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in net.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    net.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup, min_lr)
        starts = torch.as_tensor(rng.integers(0, len(stream) - T_, size=batch_size))
        chunk = data[starts[:, None] + offsets].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            logits = net(chunk[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % log_every == 0 or step == steps - 1:
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
        nll, mask = _token_nll(net, [stream[s: s + T_ + 1] for s in starts[i:i + batch]], device)
        total += float(nll.sum())
        count += int(mask.sum())
    return (total / count if count else math.nan), count


def _token_nll(net, rows, device: str = "cpu"):
    """(NLL of every predicted token (B, W - 1), zero past each row's end; mask of real positions) for
    token rows of different lengths, each token predicted from the ones before it in its row."""
    torch = _torch()
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
    torch = _torch()
    T_ = net.block_size
    out = np.full(len(seqs), np.nan)
    for i in range(0, len(seqs), batch):
        rows = [[0] + list(s)[:T_] for s in seqs[i:i + batch]]
        if max(len(r) for r in rows) < 2:
            continue
        nll, mask = _token_nll(net, rows, device)
        counts = mask.sum(1)
        ppl = torch.exp(nll.sum(1) / counts.clamp(min=1)).cpu().numpy()
        ppl[counts.cpu().numpy() == 0] = np.nan
        out[i:i + len(rows)] = ppl
    return out


def next_token(logits, history, *, temperature: float, top_k: int, top_p: float, repetition_penalty: float,
               generator=None, banned: tuple[int, ...] = ()):
    """Pick the next token of each row of ``logits`` (B, vocab) given the tokens so far (B, t)."""
    torch = _torch()
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
    torch = _torch()
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
    torch = _torch()
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


# -- the target ------------------------------------------------------------------------------
class LMTarget(Target):
    name = "lm"
    max_block = 1  # one generation per job
    params_schema = settings_schema({
        "corpus": {"enum": ["pydoc", "files", "hf"], "default": "pydoc",
                   "description": "pydoc: pydoc_data.topics (offline); files: local text files; hf: a datasets name"},
        "train": {"type": "string", "default": "", "description": "files: training text (relative to the working directory)"},
        "valid": {"type": "string", "default": "", "description": "files: validation text (optional)"},
        "test": {"type": "string", "default": "", "description": "files: test text"},
        "hf_name": {"type": "string", "default": "wikitext"},
        "hf_config": {"type": "string", "default": "wikitext-2-raw-v1"},
        "split_seed": {"type": "integer", "minimum": 0, "default": 0, "description": "pydoc: topic split seed"},
        "valid_fraction": {"type": "number", "minimum": 0, "maximum": 0.4, "default": 0.1},
        "test_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.4, "default": 0.1},
        "tokenizer": {"enum": ["char", "bpe"], "default": "char"},
        "vocab_size": {"type": "integer", "minimum": 260, "default": 1024, "description": "bpe vocabulary size"},
        "seq_len": {"type": "integer", "minimum": 2, "default": 64,
                    "description": "tokens per item: real training blocks and generated continuations"},
        "prompt": {"enum": ["real", "none"], "default": "real",
                   "description": "real: prompt with blocks of real training text; none: start from end-of-text"},
        "prompt_len": {"type": "integer", "minimum": 1, "default": 64},
        "n_layer": {"type": "integer", "minimum": 1, "default": 2},
        "n_head": {"type": "integer", "minimum": 1, "default": 4},
        "n_embd": {"type": "integer", "minimum": 8, "default": 128},
        "block_size": {"type": "integer", "minimum": 8, "default": 128, "description": "context length (tokens)"},
        "dropout": {"type": "number", "minimum": 0, "maximum": 0.9, "default": 0.0},
        "epochs": {"type": "number", "exclusiveMinimum": 0, "default": 10,
                   "description": "passes over the generation's training tokens (sets the number of steps)"},
        "max_steps": {"type": "integer", "minimum": 0, "default": 0, "description": "cap on optimizer steps (0: none)"},
        "batch_size": {"type": "integer", "minimum": 1, "default": 32},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": 2e-3},
        "min_lr_ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.1},
        "warmup": {"type": "number", "minimum": 0, "maximum": 0.5, "default": 0.05,
                   "description": "share of the steps spent warming up"},
        "weight_decay": {"type": "number", "minimum": 0, "default": 0.1},
        "grad_clip": {"type": "number", "minimum": 0, "default": 1.0},
        "log_every": {"type": "integer", "minimum": 1, "default": 50},
        "device": {"enum": ["auto", "cpu", "cuda"], "default": "auto"},
        "amp": {"type": "boolean", "default": True, "description": "bf16 autocast on GPU (ignored on CPU)"},
        "decoding": {"enum": ["sample", "beam"], "default": "sample",
                     "description": "sample: ancestral sampling with the settings below; beam: beam search "
                                    "(the paper's 5-way beam search; lam and the sampling settings are ignored)"},
        "beams": {"type": "integer", "minimum": 1, "default": 5},
        "temperature": {"type": "number", "minimum": 0, "default": 1.0,
                        "description": "sampling temperature (times lam); 0 is greedy decoding"},
        "top_k": {"type": "integer", "minimum": 0, "default": 0, "description": "0: off"},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1.0},
        "repetition_penalty": {"type": "number", "exclusiveMinimum": 0, "default": 1.0},
        "gen_batch": {"type": "integer", "minimum": 1, "default": 256},
        "eval_max_tokens": {"type": "integer", "minimum": 0, "default": 0,
                            "description": "score ppl_real on at most this many test tokens (0: all)"},
        "tail_mass": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.1},
        "repetition_n": {"type": "integer", "minimum": 1, "default": 4},
    })
    metrics = {
        "ppl_real": "perplexity of the generation's model on the real test split (per token)",
        "ppl_gen0_mean": "mean per-sequence perplexity of the generation's synthetic text under the generation-0 model",
        "ppl_gen0_p05": "5th percentile of the per-sequence perplexity under the generation-0 model",
        "ppl_gen0_p95": "95th percentile of the per-sequence perplexity under the generation-0 model",
        "distinct_1": "distinct tokens / tokens of the synthetic text",
        "distinct_2": "distinct token bigrams / bigrams of the synthetic text",
        "distinct_3": "distinct token trigrams / trigrams of the synthetic text",
        "unigram_entropy": "entropy of the synthetic text's token frequencies (nats)",
        "tail_coverage": "share of the real vocabulary's rarest tokens (10% of real token mass) still in the synthetic text",
        "repetition_rate": "share of token n-grams repeating an earlier n-gram of the same sample",
    }
    distributions = {
        "ppl_gen0": "per-sequence perplexity of the generation's synthetic text under the generation-0 model",
    }
    mlflow_requirements = ["torch", "numpy", "pandas", "tokenizers", "mlflow"]

    def __init__(self, **params):
        super().__init__(**self.with_defaults(params))
        self.p = self.params

    # -- corpus and tokenizer ----------------------------------------------------------
    @property
    def corpus_key(self) -> tuple:
        p = self.p
        if p["corpus"] == "pydoc":
            return ("pydoc", "", "", "", "", "", p["split_seed"], p["valid_fraction"], p["test_fraction"])
        if p["corpus"] == "files":
            return ("files", p["train"], p["valid"], p["test"], "", "", 0, 0.0, 0.0)
        return ("hf", "", "", "", p["hf_name"], p["hf_config"], 0, 0.0, 0.0)

    def corpus(self) -> dict[str, tuple[str, ...]]:
        return T.load_corpus(*self.corpus_key)

    @property
    def tokenizer(self):
        tok = getattr(self, "tokenizer_", None)
        if tok is None:
            tok = self.tokenizer_ = T.build_tokenizer(self.p["tokenizer"], self.p["vocab_size"], self.corpus_key)
        return tok

    def _train_stream(self) -> np.ndarray:
        """The real training split as one token stream (documents joined by a blank line)."""
        cached = getattr(self, "_stream", None)
        if cached is None:
            cached = self._stream = np.asarray(self.tokenizer.encode("\n\n".join(self.corpus()["train"])), dtype=np.int32)
        return cached

    def _blocks(self) -> np.ndarray:
        s, L = self._train_stream(), self.p["seq_len"]
        return s[: len(s) // L * L].reshape(-1, L)

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        p = self.p
        if replicates != 1:
            return "the LM runs one chain per job: set replicates: 1 (use seeds for repeats)"
        if p["n_embd"] % p["n_head"]:
            return f"n_embd ({p['n_embd']}) must be a multiple of n_head ({p['n_head']})"
        used = (p["prompt_len"] if p["prompt"] == "real" else 1) + p["seq_len"]
        if used - 1 > p["block_size"]:
            return (f"prompt_len + seq_len ({used}) exceed the context length block_size ({p['block_size']}) + 1: "
                    "generation needs the prompt and the continuation in one context")
        try:
            blocks = len(self._blocks())
        except T.CorpusError as e:
            return str(e)
        if n > blocks:
            return f"n={n} exceeds the {blocks} real training blocks of {p['seq_len']} tokens in the corpus"
        return None

    # -- data ------------------------------------------------------------------------------
    def _decode_rows(self, rows) -> np.ndarray:
        return np.array([self.tokenizer.decode(r) for r in rows], dtype=str)

    def real_data(self, rng, n, replicates):
        blocks = self._blocks()
        idx = np.sort(rng.choice(len(blocks), size=n, replace=False))
        test = self.corpus()["test"]
        return {"train": self._decode_rows(blocks[idx])[None], "test": np.array(test, dtype=str)[None]}

    def draw_real(self, rng, m, replicates):
        blocks = self._blocks()
        return self._decode_rows(blocks[rng.choice(len(blocks), size=m, replace=False)])[None]

    def _items_stream(self, items) -> np.ndarray:
        """Items joined into one token stream, each preceded by the end-of-text token (id 0)."""
        out = []
        for ids in self.tokenizer.encode_batch([str(s) for s in items]):
            out.append(0)
            out.extend(ids)
        return np.asarray(out, dtype=np.int64)

    # -- torch plumbing ---------------------------------------------------------------------
    def _new_net(self):
        p = self.p
        return build_gpt(self.tokenizer.vocab_size, p["block_size"], p["n_layer"], p["n_head"], p["n_embd"], p["dropout"])

    def _device(self) -> str:
        from workflow.torchdev import resolve_device

        return resolve_device(self.p["device"])

    def gpus(self) -> int:
        from workflow.torchdev import gpus_for

        return gpus_for(self.p["device"])

    def device_name(self) -> str:
        return getattr(self, "device_used_", "cpu")

    def steps_for(self, tokens: int) -> int:
        p = self.p
        steps = max(1, math.ceil(p["epochs"] * tokens / (p["batch_size"] * p["block_size"])))
        return min(steps, p["max_steps"]) if p["max_steps"] else steps

    # -- model --------------------------------------------------------------------------------
    def fit(self, data, rng) -> "LMTarget":
        torch = _torch()
        from workflow.torchdev import device_label

        p = self.p
        items = np.asarray(data)[0]
        stream = self._items_stream(items)
        device = self._device()
        seed = int(rng.integers(2**62))
        torch.manual_seed(seed)
        net = self._new_net().to(device)
        steps = self.steps_for(len(stream))
        log.info("training a %d-layer, %d-wide LM (%.2fM parameters, %s tokenizer, vocab %d) on %d items = %d tokens: "
                 "%d steps of %d x %d tokens on %s", p["n_layer"], p["n_embd"],
                 sum(x.numel() for x in net.parameters()) / 1e6, p["tokenizer"], self.tokenizer.vocab_size,
                 len(items), len(stream), steps, p["batch_size"], p["block_size"], device)
        valid_docs = self.corpus()["valid"]
        valid = self._items_stream(valid_docs) if valid_docs else None
        losses = train_lm(net, stream, steps=steps, batch_size=p["batch_size"], lr=p["lr"],
                          warmup=int(p["warmup"] * steps), min_lr=p["lr"] * p["min_lr_ratio"],
                          weight_decay=p["weight_decay"], grad_clip=p["grad_clip"], device=device,
                          amp=p["amp"] and device == "cuda", seed=seed + 1, log_every=p["log_every"],
                          valid=None if valid is None else valid[: 64 * p["block_size"]])
        self.net_ = net.to("cpu").eval()
        self.device_used_ = device_label(device)
        self.final_loss_ = float(np.mean(losses[-max(1, len(losses) // 20):]))
        return self

    def _prompts(self, n: int, rng) -> np.ndarray:
        """n prompts: windows of ``prompt_len`` tokens at random places of the real training stream."""
        if self.p["prompt"] == "none":
            return np.zeros((n, 1), dtype=np.int64)
        s, P = self._train_stream(), self.p["prompt_len"]
        starts = rng.integers(0, len(s) - P + 1, size=n)
        return s[starts[:, None] + np.arange(P)].astype(np.int64)

    def generate_tokens(self, n: int, lam: float, rng, prompts: Optional[np.ndarray] = None,
                        max_new: Optional[int] = None, temperature: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
        """(prompts (n, P), continuations (n, seq_len)) drawn with temperature ``temperature * lam``."""
        torch = _torch()
        p = self.p
        device = self._device()
        prompts = self._prompts(n, rng) if prompts is None else prompts
        max_new = p["seq_len"] if max_new is None else max_new
        temperature = p["temperature"] if temperature is None else temperature
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        net = self.net_.to(device)
        out = []
        try:
            for i in range(0, n, p["gen_batch"]):
                x = torch.as_tensor(prompts[i:i + p["gen_batch"]], device=device)
                if p["decoding"] == "beam":
                    out.append(beam_search(net, x, max_new, p["beams"], amp=p["amp"] and device == "cuda").cpu().numpy())
                    continue
                out.append(generate(net, x, max_new, temperature=temperature * lam, top_k=p["top_k"],
                                    top_p=p["top_p"], repetition_penalty=p["repetition_penalty"], generator=gen,
                                    amp=p["amp"] and device == "cuda").cpu().numpy())
        finally:
            self.net_ = net.to("cpu")
        cont = np.concatenate(out) if out else np.zeros((0, max_new), dtype=np.int64)
        return prompts, cont

    def sample(self, n, lam, rng):
        t0 = time.perf_counter()
        prompts, cont = self.generate_tokens(n, lam, rng)
        self.last_prompts_ = self._decode_rows(prompts) if self.p["prompt"] == "real" else None
        texts = self._decode_rows(cont)
        log.info("generated %d continuations of %d tokens in %.1fs", n, self.p["seq_len"], time.perf_counter() - t0)
        return texts[None]

    def ppl_stream(self, docs, max_tokens: int = 0) -> float:
        nll, _ = stream_nll(self.net_, self._items_stream(docs), max_tokens=max_tokens)
        return float(math.exp(nll))

    # -- reference material and metrics ---------------------------------------------------------
    def reference(self, rng):
        """The tokenizer (trained once on the real training split) and the real token counts."""
        counts = T.token_counts([self._train_stream()], self.tokenizer.vocab_size)
        tail = T.tail_tokens(counts, self.p["tail_mass"])
        log.info("%s tokenizer: vocab %d; real training split %d tokens; tail (%.0f%% of the mass): %d tokens",
                 self.p["tokenizer"], self.tokenizer.vocab_size, counts.sum(), 100 * self.p["tail_mass"], len(tail))
        return {"tokenizer": np.array(self.tokenizer.to_json()), "real_counts": counts, "tail": tail}

    def evaluate(self, samples, real, reference, gen0):
        fixed = str(reference["tokenizer"])
        if self.tokenizer.to_json() != fixed or gen0.tokenizer.to_json() != fixed:
            raise RuntimeError("a model's tokenizer differs from the experiment's reference tokenizer "
                               "(was the corpus or the tokenizers package changed mid-study?)")
        seqs = self.tokenizer.encode_batch([str(t) for t in np.asarray(samples)[0]])
        out = {"ppl_real": self.ppl_stream(list(real["test"][0]), self.p["eval_max_tokens"])}
        per_seq = sequence_ppl(gen0.net_, seqs)  # same tokenizer: the sequences serve both models
        s = T.summarize_ppl(per_seq[np.isfinite(per_seq)])
        out.update({"ppl_gen0_mean": s["mean"], "ppl_gen0_p05": s["p05"], "ppl_gen0_p95": s["p95"]})
        for k in (1, 2, 3):
            out[f"distinct_{k}"] = T.distinct_n(seqs, k)
        out["unigram_entropy"] = T.unigram_entropy(seqs)
        out["tail_coverage"] = T.tail_coverage(seqs, reference["tail"])
        out["repetition_rate"] = T.repetition_rate(seqs, self.p["repetition_n"])
        out["ppl_gen0"] = per_seq  # a distribution: stored per sequence, not a metric
        return out

    # -- samples: a text file, one sample per line --------------------------------------------------
    def save_samples(self, samples, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        T.write_lines(directory / "samples.txt", np.asarray(samples)[0])

    def load_samples(self, directory):
        return np.array(T.read_lines(Path(directory) / "samples.txt"), dtype=str)[None]

    def write_sample_artifacts(self, samples, directory: Path) -> None:
        """``prompts.txt`` (line i prompted sample i) and ``preview.txt``: the first 20 prompts and continuations."""
        prompts = getattr(self, "last_prompts_", None)
        texts = np.asarray(samples)[0]
        if prompts is not None:
            T.write_lines(Path(directory) / "prompts.txt", prompts)
        parts = []
        for i, cont in enumerate(texts[:20]):
            head = f"--- sample {i}"
            body = f"[prompt] {prompts[i]}\n[continuation] {cont}" if prompts is not None else str(cont)
            parts.append(f"{head}\n{body}\n")
        io.save_text(Path(directory) / "preview.txt", "\n".join(parts))

    def sample_artifacts(self, samples_dir: Path) -> list[Path]:
        return [p for p in (Path(samples_dir) / "preview.txt", Path(samples_dir) / "samples.txt") if p.is_file()]

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory):
        from workflow.torchdev import save_state_dict

        directory = Path(directory)
        save_state_dict(self.net_, directory / "model.pt")
        io.save_text(directory / "tokenizer.json", self.tokenizer.to_json())
        io.save_json(directory / "target.json", {"target": self.name, "params": self.params,
                                                 "device": self.device_name(),
                                                 "vocab_size": self.tokenizer.vocab_size,
                                                 "final_loss": getattr(self, "final_loss_", None)})

    def _load_state(self, directory: Path) -> "LMTarget":
        from workflow.torchdev import load_state_dict

        path = directory / "tokenizer.json"
        if not path.is_file():
            raise io.IntermediateFileError(f"intermediate file is missing: {path}")
        try:
            self.tokenizer_ = T.tokenizer_from_json(path.read_text(encoding="utf-8"))
        except Exception as exc:
            raise io.IntermediateFileError(f"intermediate file is truncated or corrupt: {path} ({exc})") from exc
        state = load_state_dict(directory / "model.pt")
        net = self._new_net()
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise io.IntermediateFileError(f"{directory / 'model.pt'} does not fit {directory / 'target.json'} ({exc})") from exc
        self.net_ = net.eval()
        self.device_used_ = io.load_json(directory / "target.json").get("device", "cpu")
        return self

    def log_mlflow_model(self, name, model_dir):
        """A pyfunc "model from code" (``workflow/mlflow_models/lm_model.py``) over the saved state dict and
        tokenizer: ``predict(pd.DataFrame({"prompt": [...]}), params={"max_new_tokens": 64, "temperature": 1.0,
        "seed": 0})`` returns the continuations.  Nothing is pickled."""
        import mlflow
        from mlflow.models import ModelSignature
        from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

        signature = ModelSignature(
            inputs=Schema([ColSpec("string", "prompt")]),
            outputs=Schema([ColSpec("string", "prompt"), ColSpec("string", "continuation")]),
            params=ParamSchema([ParamSpec("max_new_tokens", "long", self.p["seq_len"]),
                                ParamSpec("temperature", "double", float(self.p["temperature"])),
                                ParamSpec("seed", "long", 0)]))
        code = Path(__file__).resolve().parents[1] / "mlflow_models" / "lm_model.py"
        return mlflow.pyfunc.log_model(name=name, python_model=str(code), artifacts={"model": str(model_dir)},
                                       signature=signature, pip_requirements=self.mlflow_requirements)
