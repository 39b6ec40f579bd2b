"""Text corpora, tokenizers, the samples file format and text metrics (no torch here).

Corpora (:func:`load_corpus`):

* ``pydoc`` (default, offline): the documentation topics of the standard
  library's ``pydoc_data.topics`` (about 465 KB of English), split into
  train / validation / test *by topic* with a fixed seed.
* ``files``: local UTF-8 text files (``train`` and ``test``; ``valid`` optional).
* ``hf``: a Hugging Face ``datasets`` name such as ``wikitext`` /
  ``wikitext-2-raw-v1`` (optional dependency; needs the network or a cache).

Tokenizers (:func:`build_tokenizer`) are trained once on the real training
split and are deterministic for a corpus, so every job rebuilds the same one;
models save theirs beside the weights.  Id 0 is the end-of-text token that
separates documents and samples.

Samples files hold one sample per line; a backslash, newline or carriage return
inside a sample is written ``\\\\``, ``\\n``, ``\\r`` (:func:`escape_line`).
"""
from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from pydoc_data.topics import topics
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ouroboros import io

EOT = "<|endoftext|>"


class CorpusError(RuntimeError):
    """The corpus cannot be loaded (missing file, missing optional package, offline)."""


# -- corpora ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def load_corpus(source: str, train: str = "", valid: str = "", test: str = "", hf_name: str = "",
                hf_config: str = "", split_seed: int = 0, valid_fraction: float = 0.1,
                test_fraction: float = 0.1) -> dict[str, tuple[str, ...]]:
    """{"train", "valid", "test"} -> tuple of documents (non-empty strings)."""
    if source == "pydoc":
        return _pydoc_corpus(split_seed, valid_fraction, test_fraction)
    if source == "files":
        return _files_corpus(train, valid, test)
    if source == "hf":
        return _hf_corpus(hf_name, hf_config)
    raise CorpusError(f"unknown corpus {source!r}; allowed: pydoc, files, hf")


def _pydoc_corpus(seed: int, valid_fraction: float, test_fraction: float):
    docs = sorted({v.strip() for v in topics.values() if v.strip()})  # a few topics share one text
    order = np.random.default_rng(seed).permutation(len(docs))
    total = sum(map(len, docs))
    out = {"test": [], "valid": [], "train": []}
    sizes = {"test": 0, "valid": 0}
    wanted = {"test": test_fraction * total, "valid": valid_fraction * total}
    for i in order:
        doc = docs[i]
        split = next((s for s in ("test", "valid") if sizes[s] < wanted[s]), "train")
        if split != "train":
            sizes[split] += len(doc)
        out[split].append(doc)
    return {k: tuple(v) for k, v in out.items()}


def _read(path: str, what: str) -> tuple[str, ...]:
    p = Path(path)
    if not path or not p.is_file():
        where = "" if p.is_absolute() or not path else f", resolved against {Path.cwd()}"
        raise CorpusError(f"the {what} text file {path!r} does not exist{where} (set params.{what} to a UTF-8 "
                          "text file; a relative path is read from the folder snakemake runs in)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text: {exc}") from exc
    docs = tuple(d.strip() for d in re.split(r"\n\s*\n", text) if d.strip())
    if not docs:
        raise CorpusError(f"{path} holds no text")
    return docs


def _files_corpus(train: str, valid: str, test: str):
    return {"train": _read(train, "train"), "valid": _read(valid, "valid") if valid else (), "test": _read(test, "test")}


def _hf_corpus(name: str, config: str):
    try:
        import datasets
    except ImportError:
        raise CorpusError("corpus: hf needs the optional package 'datasets' (pip install -e '.[hf]'); "
                          "or use corpus: files with local text files") from None
    try:
        ds = datasets.load_dataset(name, config or None)
    except Exception as exc:  # offline, unknown name, ...
        raise CorpusError(f"could not load the Hugging Face dataset {name!r} ({config or 'default config'}): {exc}; "
                          "offline, use corpus: files with local text files") from exc

    def docs(split):
        if split not in ds:
            return ()
        lines = ds[split]["text"]
        return tuple(d.strip() for d in re.split(r"\n\s*\n", "".join(lines)) if d.strip())

    out = {"train": docs("train"), "valid": docs("validation"), "test": docs("test")}
    if not out["train"] or not out["test"]:
        raise CorpusError(f"the dataset {name!r} has no train or test split with a 'text' column")
    return out


# -- tokenizers ------------------------------------------------------------------------
class CharTokenizer:
    """One token per character seen in the training text; id 0 end-of-text, id 1 unknown."""

    kind = "char"

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.itos = [EOT, "<unk>"] + self.chars
        self.stoi = {c: i + 2 for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 0) -> "CharTokenizer":
        return cls(sorted(set().union(*map(set, texts))))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(c, 1) for c in text]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] for i in ids if i >= 2)

    def to_json(self) -> str:
        return json.dumps({"type": "char", "chars": self.chars})


class BPETokenizer:
    """Byte-level BPE (Hugging Face ``tokenizers``) trained on the training text; id 0 end-of-text."""

    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1024) -> "BPETokenizer":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(list(texts), trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids if i != 0])

    def to_json(self) -> str:
        return json.dumps({"type": "bpe", "tokenizer": self.tok.to_str()})


def tokenizer_from_json(text: str):
    spec = json.loads(text)
    if spec.get("type") == "char":
        return CharTokenizer(spec["chars"])
    if spec.get("type") == "bpe":
        return BPETokenizer(Tokenizer.from_str(spec["tokenizer"]))
    raise ValueError(f"unknown tokenizer type {spec.get('type')!r}")


@functools.lru_cache(maxsize=8)
def build_tokenizer(kind: str, vocab_size: int, corpus_key: tuple):
    """The tokenizer of a corpus (``corpus_key``: the arguments of :func:`load_corpus`), trained on its train split."""
    docs = load_corpus(*corpus_key)["train"]
    if kind == "char":
        return CharTokenizer.train(docs)
    if kind == "bpe":
        return BPETokenizer.train(docs, vocab_size)
    raise ValueError(f"unknown tokenizer {kind!r}; allowed: char, bpe")


# -- samples files ---------------------------------------------------------------------
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}


def escape_line(text: str) -> str:
    return re.sub(r"[\\\n\r]", lambda m: _ESCAPES[m.group(0)], text)


def unescape_line(line: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPES.get(m.group(1), m.group(0)), line)


def write_lines(path, texts: Iterable[str]) -> None:
    io.save_text(path, "".join(escape_line(str(t)) + "\n" for t in texts))


def read_lines(path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise io.IntermediateFileError(f"intermediate file is missing: {path}", path)
    raw = path.read_text(encoding="utf-8")
    if raw and not raw.endswith("\n"):
        raise io.IntermediateFileError(f"{path} is truncated (no final newline)", path)
    return [unescape_line(line) for line in raw.split("\n")[:-1]]


# -- metrics on token sequences ----------------------------------------------------------
def _ngrams(seq: Sequence[int], n: int):
    return zip(*(seq[i:] for i in range(n)))


def distinct_n(seqs: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams / all n-grams over the samples (n-grams never cross samples; Li et al. 2016)."""
    seen, total = set(), 0
    for s in seqs:
        grams = list(_ngrams(list(s), n))
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else math.nan


def unigram_entropy(seqs: Sequence[Sequence[int]]) -> float:
    """Entropy (nats) of the token frequency distribution of all samples together."""
    counts = np.bincount(np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])) if seqs else np.zeros(0)
    counts = counts[counts > 0].astype(float)
    if not counts.size:
        return math.nan
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def tail_tokens(counts: np.ndarray, mass: float = 0.1) -> np.ndarray:
    """Ids of the rarest tokens of a real vocabulary that together carry at most ``mass`` of its token mass."""
    counts = np.asarray(counts, dtype=float)
    ids = np.flatnonzero(counts > 0)
    order = ids[np.argsort(counts[ids], kind="stable")]
    cum = np.cumsum(counts[order])
    return order[cum <= mass * counts.sum()]


def tail_coverage(seqs: Sequence[Sequence[int]], tail: np.ndarray) -> float:
    """Share of the tail tokens that occur at least once in the samples."""
    if len(tail) == 0:
        return math.nan
    present = set()
    for s in seqs:
        present.update(s)
    return float(np.isin(tail, np.fromiter(present, dtype=np.int64, count=len(present))).mean())


def repetition_rate(seqs: Sequence[Sequence[int]], n: int = 4) -> float:
    """Share of n-grams that repeat an n-gram seen earlier in the same sample (pooled over samples)."""
    repeated = total = 0
    for s in seqs:
        grams = list(_ngrams(list(s), n))
        total += len(grams)
        repeated += len(grams) - len(set(grams))
    return repeated / total if total else math.nan


def token_counts(seqs: Iterable[Sequence[int]], vocab_size: int) -> np.ndarray:
    counts = np.zeros(vocab_size, dtype=np.int64)
    for s in seqs:
        counts += np.bincount(np.asarray(s, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return counts


def summarize_ppl(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    if not values.size:
        return {"mean": math.nan, "p05": math.nan, "p95": math.nan}
    return {"mean": float(values.mean()), "p05": float(np.percentile(values, 5)), "p95": float(np.percentile(values, 95))}


def shingles(text: str, k: int = 5) -> set[str]:
    """The character k-grams of a text (the text itself when shorter)."""
    return {text[i:i + k] for i in range(max(1, len(text) - k + 1))}


def minhash_duplicates(texts: Sequence[str], similarity: float = 0.8, num_perm: int = 128, k: int = 5):
    """Boolean array, True where a text is an exact or near duplicate of an earlier kept text.

    Near duplicates: MinHash signatures of 5-character shingles (``datasketch``), candidates found by
    locality-sensitive hashing at the threshold ``similarity``, then confirmed by the estimated Jaccard
    similarity; texts are visited in order and the first of each group is kept.  Seeds are fixed, so the
    result depends only on the texts.
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=min(similarity, 0.9), num_perm=num_perm)  # candidates; confirmed below
    kept: dict[str, MinHash] = {}
    seen: set[str] = set()
    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        text = str(text)
        if text in seen:
            out[i] = True
            continue
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles(text, k)])
        if any(kept[key].jaccard(m) >= similarity for key in lsh.query(m)):
            out[i] = True
            continue
        key = str(i)
        lsh.insert(key, m)
        kept[key] = m
        seen.add(text)
    return out
