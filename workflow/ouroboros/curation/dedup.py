"""``dedup``: remove exact and near duplicates before fitting.

Candidates are visited in order and one is kept when it duplicates no item kept
before it; the first m kept are used.  What counts as a duplicate is the
target's (``Target.duplicates``): points closer than ``tolerance`` (0: exactly
equal), text by MinHash near-duplicate detection (Jaccard similarity of
character shingles at least ``similarity``), images within ``tolerance`` in the
judge's feature space.  A replicate with fewer than m distinct candidates
trains on fewer items: nothing is padded.

Exact duplicates of categories need only the counts (``Target.duplicates_on_counts``): one of each category
seen is kept, and where more than m categories were seen, which m come first in candidate order is drawn as
it falls in an exchangeable sequence: the first occurrence of a category with c copies comes at the minimum
of c exponential times, an exponential time of rate c, so the order of first occurrences is that of
E_k / c_k (E_k ~ Exp(1)) — the same distribution as visiting the items, without drawing them.
"""
from __future__ import annotations

import numpy as np

from ouroboros.curation.base import OVERSAMPLE, Selector
from ouroboros.settings import settings_schema
from ouroboros.targets.capabilities import curation_hooks


class Dedup(Selector):
    kind = "dedup"
    description = "drop exact and near duplicates (keep the first of each group), then the first m"
    reads_reference = True
    needs_scores = False
    settings_schema = settings_schema({
        "tolerance": {"type": "number", "minimum": 0, "default": 0.0,
                      "description": "points and images: items closer than this (Euclidean) are duplicates; 0: equal"},
        "similarity": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.8,
                       "description": "text: estimated Jaccard similarity of 5-character shingles at or above "
                                      "which two samples are near duplicates (MinHash LSH)"},
        "oversample": OVERSAMPLE,
    }, stage="sample")

    def check(self, target):
        if "duplicates" not in curation_hooks(target):
            return f"target {target.name} has no duplicate detection for the selector 'dedup'"
        return None

    def on_counts(self, target):
        return "duplicates" in curation_hooks(target) and bool(target.duplicates_on_counts(self.settings))

    def select_counts(self, counts, m, rng, ctx):
        seen = counts > 0
        kept = seen.astype(float)
        over = np.flatnonzero(seen.sum(axis=1) > m)  # replicates that saw more categories than m
        if over.size:
            c = counts[over]
            with np.errstate(divide="ignore"):
                first = np.where(c > 0, rng.standard_exponential(c.shape) / c, np.inf)  # first-occurrence times
            rank = np.argsort(np.argsort(first, axis=1, kind="stable"), axis=1, kind="stable")
            kept[over] = (rank < m).astype(float)
        return kept

    def select(self, candidates, scores, m, rng, ctx):
        dup = np.asarray(ctx.target.duplicates(candidates, self.settings, ctx.reference), dtype=bool)  # (R, N)
        keep = ~dup
        order = np.argsort(~keep, axis=1, kind="stable")[:, :m]  # kept candidates first, in candidate order
        valid = np.take_along_axis(keep, order, axis=1)
        return order, valid
