"""Curation: verified, selected and deduplicated synthetic data, composable with every regime.

An experiment's ``curation:`` mapping names a selector and (where it needs one)
a scorer, with their settings side by side::

    curation: {selector: top, q: 0.25, scorer: truth}
    curation: {selector: choice, K: 4, gamma: 1.0, scorer: reward, reward: {kind: linear, w: [1.0]}}
    curation: {selector: random, oversample: 4}          # the control: same candidates, no selection
    curation: {selector: dedup, tolerance: 0.01}

Every generation's model then draws the selector's number of candidates, the
scorer scores them and the selector keeps what the regime needs.  Selectors and
scorers are registries (:mod:`ouroboros.curation.registry`): a new kind is one module (or class) plus one line there.
"""
from __future__ import annotations

import functools
import json
from typing import Optional

import numpy as np

from ouroboros import data as D
from ouroboros.curation.base import Context, Scorer, Selector
from ouroboros.curation.registry import SCORERS, SELECTORS, scorer_class, selector_class
from ouroboros.settings import ConfigError, check, settings_schema
from ouroboros.targets.capabilities import curation_hooks

#: metrics every curated chain reports, per generation (for the samples that generation's model drew)
METRICS = {
    "curation_kept_fraction": "share of the drawn candidates kept by curation (mean over replicates)",
    "curation_score_kept": "mean score of the kept candidates",
    "curation_score_all": "mean score of all drawn candidates",
}
#: metric -> unit, as a target's ``units``
UNITS = {"curation_kept_fraction": "share"}
#: metrics that may be infinite by definition: a score is often a log-likelihood, -inf for an item the model
#: gives no mass (a category it lost)
INFINITE = frozenset({"curation_score_kept", "curation_score_all"})


class Curation:
    """One selector and an optional scorer, from a flat settings mapping."""

    def __init__(self, settings: dict, at: str = "curation"):
        if not isinstance(settings, dict) or "selector" not in settings:
            raise ConfigError(f"invalid config at {at}: give a 'selector' ({', '.join(SELECTORS)})")
        check({"type": "object", "properties": {"selector": {"enum": list(SELECTORS)},
                                                "scorer": {"enum": ["none"] + list(SCORERS)}}}, dict(settings), at)
        sel_cls = selector_class(settings["selector"])
        scorer_kind = settings.get("scorer", "none")
        sc_cls = None if scorer_kind in (None, "none") else scorer_class(scorer_kind)
        props = {"selector": {"enum": list(SELECTORS)}, "scorer": {"enum": ["none"] + list(SCORERS), "default": "none"}}
        props.update(sel_cls.settings_schema["properties"])
        if sc_cls is not None:
            props.update(sc_cls.settings_schema["properties"])
        full = dict(settings)
        check(settings_schema(props), full, at)
        own = lambda cls: {k: full[k] for k in cls.settings_schema["properties"] if k in full}  # noqa: E731
        self.selector = sel_cls(**own(sel_cls))
        self.scorer = sc_cls(**own(sc_cls)) if sc_cls is not None else None
        if self.selector.needs_scores and self.scorer is None:
            raise ConfigError(f"invalid config at {at}: the selector {self.selector.kind!r} needs a scorer; "
                              f"allowed values: {', '.join(SCORERS)}")
        self._spec = full

    def to_spec(self) -> dict:
        return dict(self._spec)

    @classmethod
    def from_spec(cls, spec: Optional[dict]) -> Optional["Curation"]:
        """The step of a spec (None: no curation), built and checked once per distinct spec, so that an experiment
        and each of its chain specs share one (a step keeps no state)."""
        return _built(json.dumps(spec, sort_keys=True)) if spec else None

    def columns(self) -> dict:
        return {f"curation.{k}": v for k, v in self._spec.items() if isinstance(v, (int, float, str, bool))}

    def mlflow_params(self) -> dict[str, str]:
        return {f"curation.{k}": str(v) for k, v in self._spec.items()}

    def check(self, target) -> Optional[str]:
        if "candidates" not in curation_hooks(target):
            return f"target {target.name} cannot curate its samples"
        for part in (self.selector, self.scorer):
            problem = part.check(target) if part is not None else None
            if problem:
                return problem
        return None

    @property
    def reads_reference(self) -> bool:
        """Whether the step reads the experiment's reference material (a judge; its curation reference)."""
        return any(part is not None and part.reads_reference for part in (self.selector, self.scorer))

    def metric_names(self) -> list[str]:
        """The curation metrics this step reports (scores only where there is a scorer)."""
        return [m for m in METRICS if self.scorer is not None or m == "curation_kept_fraction"]

    def n_candidates(self, m: int) -> int:
        return self.selector.n_candidates(m) if m else 0

    @staticmethod
    def candidates(step: Optional["Curation"], m: int) -> int:
        """Samples a model draws so that m items remain after ``step`` (m without a step)."""
        return step.n_candidates(m) if step is not None else m

    def on_statistics(self, target) -> bool:
        """Whether this step runs on the target's statistics (category counts) rather than items: a selector
        that can (exact dedup) and no scorer (scores are per item)."""
        return self.scorer is None and self.selector.on_counts(target)

    def apply(self, candidates, m: int, ctx: Context) -> tuple[D.Data, dict[str, float]]:
        """Keep m items of every replicate's candidates (fewer where the selector reports a shortfall)."""
        if isinstance(candidates, D.Counts):  # see on_statistics
            if m == 0:
                return D.Counts(np.zeros_like(candidates.c)), {}
            kept = self.selector.select_counts(candidates.c, m, ctx.rng, ctx)
            return D.Counts(kept), {"curation_kept_fraction": float(np.mean(kept.sum(axis=1)
                                                                            / candidates.c.sum(axis=1)))}
        cand = np.asarray(candidates)
        r, n = cand.shape[:2]
        if m == 0:
            return cand[:, :0], {}
        cand = self.selector.transform(cand, ctx)
        scores = None if self.scorer is None else np.asarray(self.scorer.score(cand, ctx), dtype=float)
        idx, valid = self.selector.select(cand, scores, m, ctx.rng, ctx)
        rows = np.arange(r)[:, None]
        kept = cand[rows, idx]
        out = {"curation_kept_fraction": float(np.mean(valid.sum(axis=1) / n))}
        if scores is not None:
            ks = scores[rows, idx]
            per = np.where(valid, ks, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
            out["curation_score_kept"] = float(np.mean(per[valid.any(axis=1)])) if valid.any() else float("nan")
            out["curation_score_all"] = float(np.mean(scores))
        return D.compact(kept, valid), out


@functools.lru_cache(maxsize=None)
def _built(spec: str) -> Curation:
    return Curation(json.loads(spec))


__all__ = ["Context", "Curation", "INFINITE", "METRICS", "UNITS", "SCORERS", "SELECTORS", "Scorer", "Selector",
           "scorer_class", "selector_class"]
