"""The LM target's backbones: one protocol, two implementations.

:class:`Backbone` is everything :class:`~ouroboros.targets.lm.LMTarget` asks of the network it holds: its
tokenizer and end-of-text token, the checks of its settings, fitting on the items' token ids, generation with
the decoding settings, token log-likelihoods (the test stream's perplexity, the paper's block perplexity,
per-sequence perplexity), save and load, what its MLflow model records, and its sizes for the cost estimate.

* :class:`Scratch` (``backbone: gpt``): the small nanoGPT-style model of :mod:`ouroboros.nets.gpt`, trained
  from scratch on the items joined into one token stream, with a character or BPE tokenizer trained on the
  real training split;
* :class:`Pretrained` (``backbone: pretrained``): a transformers causal LM (:mod:`ouroboros.nets.hf`)
  fine-tuned with every item its own row, fully or through a LoRA adapter, from the converted copy in the
  backbone cache (:mod:`ouroboros.backbones`).

:func:`make_backbone` is the one place that reads the ``backbone`` setting.  A backbone holds the settings and
what it derives from them, never the fitted network: the target keeps ``net_`` and ``tokenizer_`` (its fitted
attributes) and passes them in.  torch, transformers and peft are imported only inside the methods that run a
network: the preflight builds backbones to count parameters without them.
"""
from __future__ import annotations

import abc
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Callable, ClassVar, Optional

import numpy as np

from ouroboros import backbones, io
from ouroboros import text as T
from ouroboros.nets import hf
from ouroboros.settings import ConfigError
from ouroboros.torchdev import load_weights, resolve_device, save_tensors

log = logging.getLogger("ouroboros")


def _gpt():
    from ouroboros.nets import gpt

    return gpt


def join_items(items: list[list[int]], eot: int) -> np.ndarray:
    """Items' token ids joined into one stream, each preceded by the end-of-text token."""
    out = []
    for ids in items:
        out.append(eot)
        out.extend(ids)
    return np.asarray(out, dtype=np.int64)


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
        vocab = json.dumps(sorted(self.tok.get_vocab().items()), ensure_ascii=False)
        return json.dumps({"kind": "transformers", "vocab": len(self.tok), "eos": self.tok.eos_token,
                           "sha256": hashlib.sha256(vocab.encode()).hexdigest()})


class Backbone(abc.ABC):
    """The network behind an LM target (see the module docstring).  ``p``: the target's settings;
    ``corpus_key``: its corpus (a from-scratch tokenizer is trained on it)."""

    #: the ``backbone`` setting that selects it
    kind: ClassVar[str]
    #: Python, numpy and torch hold about 520 MB; what this backbone's libraries add
    runtime_extra_bytes: ClassVar[int] = 0

    def __init__(self, p: dict, corpus_key: tuple):
        self.p = p
        self.corpus_key = corpus_key

    # -- tokenizer ---------------------------------------------------------------------------
    @abc.abstractmethod
    def tokenizer(self, attached: dict):
        """The tokenizer (``attached``: the folders given to the job, the backbone cache entry among them)."""

    @abc.abstractmethod
    def eot_id(self, tokenizer) -> int:
        """The end-of-text token: what starts every item's row and stands in for an empty prompt."""

    @abc.abstractmethod
    def describe(self) -> str:
        """How log lines name the tokenizer's origin."""

    # -- checks before any job -------------------------------------------------------------------
    @abc.abstractmethod
    def check(self, tokenizer: Callable, corpus: Callable) -> Optional[str]:
        """A message if the settings cannot run on this backbone, else None (``tokenizer()``, ``corpus()``:
        the target's, read only if needed)."""

    # -- the workflow's view ---------------------------------------------------------------------
    def source(self) -> Optional[str]:
        """The pretrained source converted into the backbone cache (None: nothing to convert)."""
        return None

    def starts_from_previous(self) -> bool:
        return False

    requirements: ClassVar[tuple[str, ...]] = ()

    # -- fit, sample, score ------------------------------------------------------------------------
    @abc.abstractmethod
    def fit(self, items: list[list[int]], *, tokenizer, seed: int, device: str, attached: dict,
            valid: Optional[Callable[[], list[list[int]]]] = None) -> tuple[object, list[tuple[int, float]]]:
        """(the trained network, (step, loss) of every step) on the items' token ids; torch is seeded already.
        ``valid()``: the validation split's documents as token ids, for a backbone that reports on them."""

    @abc.abstractmethod
    def generate(self, net, prompts: np.ndarray, max_new: int, *, temperature: float, seed: int, device: str,
                 eot: int) -> np.ndarray:
        """``max_new`` new tokens (n, max_new) after every prompt row, with the decoding settings."""

    @abc.abstractmethod
    def eval_device(self) -> str:
        """Where the network is scored."""

    @abc.abstractmethod
    def stream_nll(self, net, stream: np.ndarray, max_tokens: int, device: str) -> float:
        """Mean NLL per predicted token of a token stream (at most ``max_tokens`` predicted; 0: all)."""

    @abc.abstractmethod
    def token_nll(self, net, rows, device: str):
        """(NLL of every predicted token (B, W - 1), zero past each row's end; the mask of real positions)."""

    @abc.abstractmethod
    def sequence_ppl(self, net, seqs, eot: int, device: str) -> np.ndarray:
        """Per-sequence perplexity, each sequence read after end-of-text."""

    # -- persistence ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def save(self, directory: Path, net, tokenizer, state: Callable[[], dict]) -> None:
        """Write the network (``state()``: its state dict in the ``weights_dtype``) and what loads it."""

    @abc.abstractmethod
    def load(self, directory: Path, meta: dict) -> tuple[object, object, Optional[dict]]:
        """(network, tokenizer, the base it was fine-tuned from or None) of a saved generation."""

    def saved_info(self, attached: dict) -> dict:
        """Extra entries of ``target.json``."""
        return {}

    def lineage(self, model_dir: Path, base: Optional[dict]) -> dict[str, str]:
        """Tags of the logged MLflow model (what it copies, the base it needs)."""
        return {}

    # -- sizes (ouroboros.costs) --------------------------------------------------------------------------
    @abc.abstractmethod
    def shape(self, vocab: Callable[[], int]) -> dict:
        """Layers, width, MLP width, heads and vocabulary of the network (``vocab()``: the tokenizer's size, read
        only by a backbone whose network it sizes)."""

    @abc.abstractmethod
    def parameters(self, vocab: Callable[[], int]) -> int:
        """Parameters of the whole network."""

    @abc.abstractmethod
    def new_net(self, vocab: int):
        """An untrained network of this backbone's shape."""

    def trained_parameters(self, vocab: Callable[[], int]) -> int:
        return self.parameters(vocab)

    def model_bytes(self, vocab: Callable[[], int]) -> int:
        """In memory: float32 weights."""
        return 4 * self.parameters(vocab)

    def saved_bytes(self, vocab: Callable[[], int]) -> int:
        return {"fp32": 4, "bf16": 2, "fp16": 2}[self.p["weights_dtype"]] * self.parameters(vocab)

    @abc.abstractmethod
    def row_tokens(self) -> int:
        """Tokens of one training row."""

    def window_tokens(self) -> int:
        """Tokens of a scoring batch beyond the 64 blocks of seq_len (0: none)."""
        return 0

    def stream_reads(self) -> float:
        """How many times scoring the test stream reads each token."""
        return 1.0

    @abc.abstractmethod
    def steps(self, n: int, tokens: int) -> int:
        """Optimiser steps of a fit on ``n`` items of ``tokens`` tokens in all."""


class Scratch(Backbone):
    """``backbone: gpt``: the from-scratch nanoGPT-style model (:mod:`ouroboros.nets.gpt`)."""

    kind = "gpt"

    def tokenizer(self, attached):
        return T.build_tokenizer(self.p["tokenizer"], self.p["vocab_size"], self.corpus_key)

    def eot_id(self, tokenizer) -> int:
        return 0

    def describe(self) -> str:
        return self.p["tokenizer"]

    def check(self, tokenizer, corpus):
        p = self.p
        if p["n_embd"] % p["n_head"]:
            return f"n_embd ({p['n_embd']}) must be a multiple of n_head ({p['n_head']})"
        if p["decoding"] == "beam" and p["repetition_penalty"] != 1.0:
            return "repetition_penalty: the from-scratch model's beam search has none (set 1.0, or backbone: pretrained)"
        return None

    def new_net(self, vocab: int):
        p, gpt = self.p, _gpt()
        return gpt.GPT(gpt.GPTConfig(vocab, p["block_size"], p["n_layer"], p["n_head"], p["n_embd"], p["dropout"]))

    def fit(self, items, *, tokenizer, seed, device, attached, valid=None):
        p = self.p
        stream = join_items(items, 0)
        net = self.new_net(tokenizer.vocab_size).to(device)
        steps = self.steps(len(items), len(stream))
        log.info("training a %d-layer, %d-wide LM (%.2fM parameters, %s tokenizer, vocab %d) on %d items = %d tokens: "
                 "%d steps of %d x %d tokens on %s", p["n_layer"], p["n_embd"],
                 sum(x.numel() for x in net.parameters()) / 1e6, p["tokenizer"], tokenizer.vocab_size,
                 len(items), len(stream), steps, p["batch_size"], p["block_size"], device)
        held = valid() if valid is not None else None
        held = join_items(held, 0) if held else None
        losses = _gpt().train_lm(net, stream, steps=steps, batch_size=p["batch_size"], lr=p["lr"],
                                 warmup=int(p["warmup"] * steps), min_lr=p["lr"] * p["min_lr_ratio"],
                                 weight_decay=p["weight_decay"], grad_clip=p["grad_clip"], device=device,
                                 amp=p["amp"] and device == "cuda", seed=seed + 1, log_every=p["log_every"],
                                 valid=None if held is None else held[: 64 * p["block_size"]])
        return net, list(enumerate(losses, start=1))

    def generate(self, net, prompts, max_new, *, temperature, seed, device, eot):
        import torch

        p, gpt = self.p, _gpt()
        gen = torch.Generator(device=device).manual_seed(seed)
        amp = p["amp"] and device == "cuda"
        out = []
        for i in range(0, len(prompts), p["gen_batch"]):
            x = torch.as_tensor(prompts[i:i + p["gen_batch"]], device=device)
            if p["decoding"] == "beam":
                out.append(gpt.beam_search(net, x, max_new, p["beams"], amp=amp).cpu().numpy())
                continue
            out.append(gpt.generate(net, x, max_new, temperature=temperature, top_k=p["top_k"], top_p=p["top_p"],
                                    repetition_penalty=p["repetition_penalty"], generator=gen, amp=amp).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, max_new), dtype=np.int64)

    def eval_device(self) -> str:
        return "cpu"

    def stream_nll(self, net, stream, max_tokens, device):
        return _gpt().stream_nll(net, stream, device, max_tokens=max_tokens)[0]

    def token_nll(self, net, rows, device):
        return _gpt().token_nll(net, rows, device)

    def sequence_ppl(self, net, seqs, eot, device):
        return _gpt().sequence_ppl(net, seqs, device)

    def save(self, directory, net, tokenizer, state):
        save_tensors(state(), directory / "model.pt")
        io.save_text(directory / "tokenizer.json", tokenizer.to_json())

    def load(self, directory, meta):
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise io.IntermediateFileError(f"intermediate file is missing: {path}", path)
        try:
            tokenizer = T.tokenizer_from_json(path.read_text(encoding="utf-8"))
        except Exception as exc:
            raise io.IntermediateFileError(f"intermediate file is truncated or corrupt: {path} ({exc})", path) from exc
        net = load_weights(self.new_net(tokenizer.vocab_size), directory / "model.pt", "lm")
        return net, tokenizer, None

    # -- sizes ------------------------------------------------------------------------------------
    def shape(self, vocab):
        p = self.p
        return {"layers": p["n_layer"], "hidden": p["n_embd"], "mlp": 4 * p["n_embd"], "heads": p["n_head"],
                "vocab": vocab()}

    def parameters(self, vocab):
        """Tied embeddings, positions, 12 e^2 + 13 e a layer, the final norm (counted; nothing built)."""
        p, e = self.p, self.p["n_embd"]
        return vocab() * e + p["block_size"] * e + p["n_layer"] * (12 * e * e + 13 * e) + 2 * e

    def row_tokens(self):
        return self.p["block_size"]

    def steps(self, n, tokens):
        """``epochs`` passes over the tokens in batches of windows of the context (capped by ``max_steps``)."""
        p = self.p
        steps = max(1, math.ceil(p["epochs"] * tokens / (p["batch_size"] * p["block_size"])))
        return min(steps, p["max_steps"]) if p["max_steps"] else steps


class Pretrained(Backbone):
    """``backbone: pretrained``: a transformers causal LM (:mod:`ouroboros.nets.hf`) fine-tuned from its
    converted copy in the backbone cache, fully or through a LoRA adapter (peft); ``init: previous`` continues
    from generation t - 1's."""

    kind = "pretrained"
    runtime_extra_bytes = 250 * 2 ** 20  # transformers and its tokenizers

    @property
    def requirements(self) -> tuple[str, ...]:
        return ("transformers", "safetensors") + (("peft",) if self.p["adapter"] else ())

    def tokenizer(self, attached):
        """The converted model's copy where attached, else the source's own."""
        base = attached.get("backbone")
        return HFTokenizer(hf.load_tokenizer(Path(base) if base else self._readable()))

    def _readable(self):
        """Where the model's config and tokenizer are read before a job has one attached: its converted copy
        where there is one (:func:`ouroboros.backbones.ready`; what the jobs read), else the source itself
        (SmolLM2's GGUF: 5 s for its tokenizer and 4 s for its config, against 0.2 s)."""
        converted = backbones.ready(self.p["model"])
        return hf.Source("dir", str(converted.resolve()), given=self.p["model"]) if converted else hf.resolve(self.p["model"])

    def eot_id(self, tokenizer) -> int:
        return int(tokenizer.eos_id)

    def describe(self) -> str:
        return self.p["model"]

    def source(self):
        return self.p["model"]

    def starts_from_previous(self):
        return self.p["init"] == "previous"

    def check(self, tokenizer, corpus):
        """The corpus first (the model's tokenizer cannot help there), then the ``model:`` source, its tokenizer,
        context length and adapter modules (read from its config)."""
        p = self.p
        try:
            corpus()
        except T.CorpusError as e:
            return str(e)
        try:
            source = self._readable()
            # a GGUF file's tensor table is read (1.7 s for SmolLM2's) until it has been converted: the cache
            # entry's name holds the file's size and time, so a converted, unchanged file is known to be whole
            if source.kind == "gguf":
                problem = hf.gguf_problem(Path(source.path) / source.gguf_file)
                if problem:
                    return f"model: GGUF file {Path(source.path) / source.gguf_file} {problem}"
            config = hf.load_config(source)
        except hf.ModelSourceError as exc:
            return str(exc)
        except (OSError, ValueError) as exc:
            return f"model: {p['model']} cannot be read as a transformers model ({type(exc).__name__}: {exc})"
        if tokenizer().eos_id is None:
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

    # -- fit --------------------------------------------------------------------------------------
    @staticmethod
    def base_dir(attached: dict) -> Path:
        base = attached.get("backbone")
        if not base:
            raise RuntimeError("a pretrained lm fits from its converted copy in the backbone cache; none was "
                               "attached (the train job's `backbone` input)")
        return Path(base)

    def base_info(self, attached: dict) -> dict:
        """The pretrained model a generation is fine-tuned from: its converted folder (absolute) and digest."""
        folder = self.base_dir(attached).resolve()
        b = hf.read_backbone(folder)
        return {"path": str(folder), "model": b["model"], "sha256": b["sha256"]}

    def rows(self, items: list[list[int]], eot: int) -> list[list[int]]:
        """Each item as its own training row: end-of-text, then its tokens (at most block_size in all)."""
        L = self.p["block_size"] - 1
        return [[eot] + ids[:L] for ids in items]

    def fit(self, items, *, tokenizer, seed, device, attached, valid=None):
        p = self.p
        base = self.base_dir(attached)
        problem = backbones.check_weights(base)
        if problem:  # never used: moved aside, the next run converts the source again
            backbones.discard(base, problem)
            raise io.IntermediateFileError(f"the backbone cache entry {base} does not match its record ({problem}); "
                                           "it was moved aside: run the workflow again to rebuild it", base)
        previous = attached.get("previous")
        if previous and p["adapter"]:  # continue training generation t-1's adapter
            net = hf.load_model(base, adapter_dir=previous, trainable_adapter=True)
        else:
            net = hf.load_model(previous or base)
            if p["adapter"]:
                a = p["adapter"]
                net = hf.add_adapter(net, a["r"], a["alpha"], a["dropout"], a["target_modules"])
        net = net.to(device)
        eot = self.eot_id(tokenizer)
        rows = self.rows(items, eot)
        trainable = sum(x.numel() for x in net.parameters() if x.requires_grad)
        log.info("fine-tuning %s (%s; %.1fM parameters, %.2fM trained) from %s on %d items = %d tokens, %g epochs of "
                 "batches of %d on %s", p["model"], "LoRA" if p["adapter"] else "all weights",
                 sum(x.numel() for x in net.parameters()) / 1e6, trainable / 1e6,
                 "generation t-1" if previous else "the pretrained weights", len(rows), sum(map(len, rows)),
                 p["epochs"], p["batch_size"], device)
        losses = hf.train_rows(net, rows, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                               min_lr=p["lr"] * p["min_lr_ratio"], warmup=p["warmup"], weight_decay=p["weight_decay"],
                               grad_clip=p["grad_clip"], device=device, amp=p["amp"], seed=seed + 1,
                               log_every=p["log_every"], max_steps=p["max_steps"], pad_id=eot)
        return net, list(enumerate(losses, start=1))

    def generate(self, net, prompts, max_new, *, temperature, seed, device, eot):
        p = self.p
        return hf.generate(net, prompts, max_new, beams=p["beams"] if p["decoding"] == "beam" else 1,
                              sample=p["decoding"] == "sample", temperature=temperature, top_k=p["top_k"],
                              top_p=p["top_p"], repetition_penalty=p["repetition_penalty"], seed=seed,
                              batch=p["gen_batch"], device=device, amp=p["amp"], eos_id=eot)

    # -- scores (where the model trains) -------------------------------------------------------------
    def eval_device(self) -> str:
        return resolve_device(self.p["device"])

    def stream_nll(self, net, stream, max_tokens, device):
        """The standard sliding window, stride ``ppl_stride`` (0: half the context)."""
        p = self.p
        if max_tokens:
            stream = stream[: max_tokens + 1]
        return hf.sliding_nll(net, stream, p["block_size"], p["ppl_stride"] or max(1, p["block_size"] // 2),
                                 device=device, amp=p["amp"])[0]

    def token_nll(self, net, rows, device):
        return hf.token_nll(net, rows, device, self.p["amp"])

    def sequence_ppl(self, net, seqs, eot, device):
        return hf.sequence_ppl(net, seqs, eot, self.p["block_size"] - 1, device=device, amp=self.p["amp"])

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, directory, net, tokenizer, state):
        """The ``save_pretrained`` folder (weights as safetensors with the tokenizer, loadable by transformers as
        it is; or the LoRA adapter alone, the base named in ``target.json``)."""
        rounded = {} if self.p["weights_dtype"] == "fp32" else {"state_dict": state()}
        net.save_pretrained(directory, safe_serialization=True, **rounded)
        if not self.p["adapter"]:
            tokenizer.tok.save_pretrained(directory)

    def load(self, directory, meta):
        adapter = self.p["adapter"]
        base = meta.get("base") or {}
        folder = Path(base.get("path", ""))
        if adapter:
            if not (folder / "backbone.json").is_file():
                raise io.IntermediateFileError(
                    f"{directory} holds a LoRA adapter of {base.get('model')} (sha256 {base.get('sha256', '?')[:12]}), "
                    f"whose converted base folder {folder} is missing (rerun the experiment's reference job)", directory)
            found = hf.read_backbone(folder)["sha256"]
            if found != base.get("sha256"):
                raise io.IntermediateFileError(f"{directory}: the base model in {folder} has sha256 {found[:12]}, not the "
                                               f"{base.get('sha256', '?')[:12]} this adapter was trained on", directory)
        weights = directory / ("adapter_model.safetensors" if adapter else "model.safetensors")
        if not weights.is_file():
            raise io.IntermediateFileError(f"intermediate file is missing: {weights}", weights)
        try:
            net = hf.load_model(folder, adapter_dir=directory) if adapter else hf.load_model(directory)
            tokenizer = HFTokenizer(hf.load_tokenizer(folder if adapter else directory))
        except (OSError, ValueError) as exc:
            raise io.IntermediateFileError(f"{directory} does not hold a loadable model ({type(exc).__name__}: {exc})",
                                           directory) from exc
        return net, tokenizer, base

    def lineage(self, model_dir, base):
        """What the logged model copies (bytes; the adapter or all weights) and the base it needs (referenced,
        never copied)."""
        size = sum(f.stat().st_size for f in Path(model_dir).rglob("*") if f.is_file())
        return {"ouroboros.logged_bytes": str(size), "ouroboros.weights": "adapter" if self.p["adapter"] else "full",
                "ouroboros.base_model": str(base.get("model")), "ouroboros.base_sha256": str(base.get("sha256")),
                "ouroboros.base_path": str(base.get("path"))}

    # -- sizes -------------------------------------------------------------------------------------------
    def _config(self):
        """The model's transformers config (read from the source or its converted copy: no weights are loaded)."""
        return hf.load_config(self._readable())

    def shape(self, vocab):
        c = self._config()
        return {"layers": c.num_hidden_layers, "hidden": c.hidden_size,
                "mlp": getattr(c, "intermediate_size", 4 * c.hidden_size), "heads": c.num_attention_heads,
                "vocab": c.vocab_size}

    def _counts(self) -> tuple[int, int]:
        """(all parameters, trained parameters) from the config (an empty meta-device model)."""
        cached = getattr(self, "_counts_", None)
        if cached is None:
            a = self.p["adapter"] or {}
            cached = self._counts_ = hf.parameter_counts(self._config(), a.get("target_modules", ()), a.get("r", 0))
        return cached

    def parameters(self, vocab):
        return self._counts()[0]

    def new_net(self, vocab):
        """The source's architecture, untrained (from its config)."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(self._config())

    def trained_parameters(self, vocab):
        return self._counts()[1] if self.p["adapter"] else self.parameters(vocab)

    def model_bytes(self, vocab):
        """float32 weights: with an adapter, the base's and the adapter's."""
        return 4 * (self.parameters(vocab) + (self.trained_parameters(vocab) if self.p["adapter"] else 0))

    def saved_bytes(self, vocab):
        width = {"fp32": 4, "bf16": 2, "fp16": 2}[self.p["weights_dtype"]]
        return width * (self.trained_parameters(vocab) if self.p["adapter"] else self.parameters(vocab))

    def row_tokens(self):
        """An item after end-of-text, at most the context."""
        return min(self.p["block_size"], self.p["seq_len"] + 1)

    def window_tokens(self):
        """16 windows of block_size (the sliding window)."""
        return 16 * self.p["block_size"]

    def stream_reads(self):
        p = self.p
        return p["block_size"] / (p["ppl_stride"] or max(1, p["block_size"] // 2))

    def steps(self, n, tokens):
        """As :func:`ouroboros.nets.hf.train_rows`: ``epochs`` passes over the rows in batches."""
        p = self.p
        steps = max(1, math.ceil(p["epochs"] * math.ceil(n / p["batch_size"])))
        return min(steps, p["max_steps"]) if p["max_steps"] else steps


#: the ``backbone`` setting -> its class
BACKBONES: dict[str, type[Backbone]] = {b.kind: b for b in (Scratch, Pretrained)}


def make_backbone(p: dict, corpus_key: tuple) -> Backbone:
    """The backbone the ``backbone`` setting names (the config's check refuses an unknown name first)."""
    if p["backbone"] not in BACKBONES:
        raise ConfigError(f"invalid config at params.backbone: unknown backbone {p['backbone']!r}; "
                          f"allowed values: {', '.join(BACKBONES)}")
    return BACKBONES[p["backbone"]](p, corpus_key)
