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

from ouroboros import data as D
from ouroboros import io
from ouroboros import text as T
from ouroboros.settings import settings_schema
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.torch_base import TorchTarget

log = logging.getLogger("ouroboros")


def _torch():
    import torch

    return torch


def _gpt():
    from ouroboros.nets import gpt

    return gpt


# -- the target ------------------------------------------------------------------------------
class LMTarget(Curatable, MlflowFlavor, TorchTarget):
    name = "lm"
    display = "LM"
    curation_hooks = ("candidates", "loglik", "duplicates")
    params_schema = settings_schema({
        "corpus": {"enum": ["pydoc", "files", "hf"], "default": "pydoc",
                   "description": "pydoc: pydoc_data.topics (offline); files: local text files; hf: a datasets name"},
        "train": {"applies": {"corpus": ["files"]},
                  "type": "string", "default": "", "description": "files: training text (relative to the working directory)"},
        "valid": {"applies": {"corpus": ["files"]},
                  "type": "string", "default": "", "description": "files: validation text (optional)"},
        "test": {"applies": {"corpus": ["files"]}, "type": "string", "default": "", "description": "files: test text"},
        "hf_name": {"applies": {"corpus": ["hf"]}, "type": "string", "default": "wikitext"},
        "hf_config": {"applies": {"corpus": ["hf"]}, "type": "string", "default": "wikitext-2-raw-v1"},
        "split_seed": {"applies": {"corpus": ["pydoc"]},
                       "type": "integer", "minimum": 0, "default": 0, "description": "pydoc: topic split seed"},
        "valid_fraction": {"applies": {"corpus": ["pydoc"]},
                           "type": "number", "minimum": 0, "maximum": 0.4, "default": 0.1},
        "test_fraction": {"applies": {"corpus": ["pydoc"]},
                          "type": "number", "exclusiveMinimum": 0, "maximum": 0.4, "default": 0.1},
        "tokenizer": {"enum": ["char", "bpe"], "default": "char"},
        "vocab_size": {"applies": {"tokenizer": ["bpe"]},
                       "type": "integer", "minimum": 260, "default": 1024, "description": "bpe vocabulary size"},
        "seq_len": {"type": "integer", "minimum": 2, "default": 64,
                    "description": "tokens per item: real training blocks and generated continuations"},
        "prompt": {"enum": ["real", "none"], "default": "real",
                   "description": "real: prompt with blocks of real training text; none: start from end-of-text"},
        "prompt_len": {"applies": {"prompt": ["real"]}, "type": "integer", "minimum": 1, "default": 64},
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
        "beams": {"applies": {"decoding": ["beam"]}, "type": "integer", "minimum": 1, "default": 5},
        "temperature": {"applies": {"decoding": ["sample"]}, "type": "number", "minimum": 0, "default": 1.0,
                        "description": "sampling temperature (times lam); 0 is greedy decoding"},
        "top_k": {"applies": {"decoding": ["sample"]},
                  "type": "integer", "minimum": 0, "default": 0, "description": "0: off"},
        "top_p": {"applies": {"decoding": ["sample"]},
                  "type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1.0},
        "repetition_penalty": {"applies": {"decoding": ["sample"]},
                               "type": "number", "exclusiveMinimum": 0, "default": 1.0},
        "gen_batch": {"type": "integer", "minimum": 1, "default": 256},
        "eval_max_tokens": {"type": "integer", "minimum": 0, "default": 0,
                            "description": "score ppl_real on at most this many test tokens (0: all)"},
        "tail_mass": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.1},
        "repetition_n": {"type": "integer", "minimum": 1, "default": 4},
    })
    units = {"ppl_real": "per token", "ppl_gen0_mean": "per token", "ppl_gen0_p05": "per token", "ppl_gen0_p95": "per token", "unigram_entropy": "nats per token",
             "tail_coverage": "share", "repetition_rate": "share"}
    default_metric_data = "samples"
    metric_data = {"ppl_real": "real"}
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

    def check_data(self, n: int) -> Optional[str]:
        p = self.p
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
        gpt = _gpt()
        return gpt.GPT(gpt.GPTConfig(self.tokenizer.vocab_size, p["block_size"], p["n_layer"], p["n_head"], p["n_embd"],
                                     p["dropout"]))

    def item_bytes(self):
        return 8 * (self.p["seq_len"] + self.p["prompt_len"])

    def steps_for(self, tokens: int) -> int:
        p = self.p
        steps = max(1, math.ceil(p["epochs"] * tokens / (p["batch_size"] * p["block_size"])))
        return min(steps, p["max_steps"]) if p["max_steps"] else steps

    # -- model --------------------------------------------------------------------------------
    def fit(self, data, rng) -> "LMTarget":
        torch = _torch()
        p = self.p
        items = D.items(data, 0)
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
        self.net_ = net.to("cpu").eval()
        self._record_device(device)
        self.final_loss_ = float(np.mean(losses[-max(1, len(losses) // 20):]))
        self.curve_ = list(enumerate((float(x) for x in losses), start=1))
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

    def ppl_stream(self, docs, max_tokens: int = 0) -> float:
        nll, _ = _gpt().stream_nll(self.net_, self._items_stream(docs), max_tokens=max_tokens)
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
        per_seq = _gpt().sequence_ppl(gen0.net_, seqs)  # same tokenizer: the sequences serve both models
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
        return {"vocab_size": self.tokenizer.vocab_size, "final_loss": getattr(self, "final_loss_", None)}

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
            return -np.log(_gpt().sequence_ppl(self.net_, seqs))[None]

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
        return mlflow.pyfunc.log_model(name=name, python_model=str(code), artifacts={"model": str(model_dir)},
                                       signature=signature, pip_requirements=self.mlflow_requirements)
