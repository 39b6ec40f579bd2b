"""Character n-gram baselines for the default study's LM: what per-character perplexity on the real test text a
model that only counts gets, so the LM's generation-0 figure can be read (has it learned its text?).

Same corpus and split as the LM target (``corpus: pydoc``, split seed 0): counts from the training documents,
the smoothing constant k of add-k chosen on the validation documents, perplexity on the test documents read
as one stream (each document's first n - 1 characters condition on the end of the previous one).
Writes benchmarks/records/char_ngram.json.

    .venv/bin/python benchmarks/char_ngram.py
"""
from __future__ import annotations

import collections
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from ouroboros import text as T  # noqa: E402

ORDERS = (1, 2, 3, 4, 5)
KS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def counts(stream: str, n: int):
    grams, contexts = collections.Counter(), collections.Counter()
    for i in range(n - 1, len(stream)):
        ctx = stream[i - n + 1:i]
        grams[ctx, stream[i]] += 1
        contexts[ctx] += 1
    return grams, contexts


def perplexity(stream: str, n: int, grams, contexts, k: float, vocab: int) -> float:
    nll = 0.0
    for i in range(n - 1, len(stream)):
        ctx = stream[i - n + 1:i]
        nll -= math.log((grams.get((ctx, stream[i]), 0) + k) / (contexts.get(ctx, 0) + k * vocab))
    return math.exp(nll / (len(stream) - n + 1))


def main() -> None:
    corpus = T.load_corpus("pydoc")
    train, valid, test = ("\n".join(corpus[s]) for s in ("train", "valid", "test"))
    vocab = len(set(train) | set(valid) | set(test))
    rows = []
    for n in ORDERS:
        grams, contexts = counts(train, n)
        k = min(KS, key=lambda k: perplexity(valid, n, grams, contexts, k, vocab))
        ppl = perplexity(test, n, grams, contexts, k, vocab)
        rows.append({"n": n, "k": k, "ppl_test": round(ppl, 2)})
        print(f"{n}-gram (add-{k:g}): per-character perplexity on the test text {ppl:.2f}")
    save("char_ngram", {"corpus": "pydoc (split seed 0)",
                        "train_chars": len(train), "test_chars": len(test), "vocab": vocab, "orders": rows})


if __name__ == "__main__":
    main()
