"""What a job of the LM target costs (:mod:`ouroboros.costs` reads it): parameters, bytes in memory and on disk,
activations, scoring batches, and work in tokens, from the settings and the backbone's sizes (nothing built)."""
from __future__ import annotations


class LMCosts:
    """Mixed into :class:`~ouroboros.targets.lm.LMTarget`: reads ``p``, ``backbone_``, ``tokenizer``, ``corpus``
    and ``_items_stream``."""

    def _vocab(self) -> int:
        return self.tokenizer.vocab_size

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
