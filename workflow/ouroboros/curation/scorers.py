"""Scorers (verifiers): each scores candidates through a target hook; higher is better.

* ``truth``: the oracle log-density of the real distribution (``Target.truth_logpdf``).
* ``noisy``: the truth score plus Gaussian noise of standard deviation ``noise``: an imperfect verifier
  (Feng et al. 2024).
* ``gen0``: log-likelihood under the generation-0 model (``Target.loglik``; the LM's is the mean
  log-probability per token, i.e. minus the log of the per-sequence perplexity).
* ``self``: log-likelihood under the current model, the one that drew the candidates: self-curation.
* ``ratio``: truth log-density minus the current model's log-likelihood, the log importance weight of a
  candidate: ``choice`` with gamma = 1 then resamples the model's samples towards the truth (sampling
  importance resampling; exact as K -> infinity), a verifier that corrects rather than sharpens.
* ``reward``: a configured reward of the item's features (``Target.features``): ``linear`` r(x) = w . x
  or ``distance`` r(x) = -||x - point|| (Ferbach et al. 2024's reward maximisation).
* ``judge``: the judge classifier's confidence (its largest class probability; the VAE).
"""
from __future__ import annotations

import numpy as np

from ouroboros.curation.base import Context, Scorer
from ouroboros.settings import ConfigError, settings_schema
from ouroboros.targets.capabilities import curation_hooks


class Truth(Scorer):
    kind = "truth"
    description = "oracle log-density of the real distribution"
    hook = "truth_logpdf"

    def score(self, items, ctx: Context):
        return ctx.target.truth_logpdf(items)


class Noisy(Scorer):
    kind = "noisy"
    description = "truth log-density plus Gaussian noise (an imperfect verifier)"
    hook = "truth_logpdf"
    settings_schema = settings_schema({
        "noise": {"type": "number", "minimum": 0, "default": 1.0,
                  "description": "standard deviation of the noise added to the truth score"},
    }, stage="sample")

    def score(self, items, ctx: Context):
        s = ctx.target.truth_logpdf(items)
        return s + self.settings["noise"] * ctx.rng.standard_normal(s.shape)


class Gen0(Scorer):
    kind = "gen0"
    description = "log-likelihood under the generation-0 model"
    hook = "loglik"

    def score(self, items, ctx: Context):
        return ctx.gen0.loglik(items)


class Self(Scorer):
    kind = "self"
    description = "log-likelihood under the model that drew the candidates (self-curation)"
    hook = "loglik"

    def score(self, items, ctx: Context):
        return ctx.model.loglik(items)


class Ratio(Scorer):
    kind = "ratio"
    description = "truth log-density minus the model's log-likelihood (log importance weight)"
    hook = "truth_logpdf"

    def check(self, target):
        problem = super().check(target)
        if problem is None and "loglik" not in curation_hooks(target):
            return f"target {target.name} cannot provide the scorer 'ratio' (it has no model log-likelihood)"
        return problem

    def score(self, items, ctx: Context):
        return ctx.target.truth_logpdf(items) - ctx.model.loglik(items)


class Reward(Scorer):
    kind = "reward"
    description = "a configured reward of the item: linear w . x or minus the distance to a point"
    hook = "features"
    settings_schema = settings_schema({
        "reward": {
            "description": "{kind: linear, w: [...]} (r = w . x) or {kind: distance, point: [...]} (r = -||x - point||)",
            "default": {"kind": "linear", "w": [1.0]},
            "oneOf": [
                {"type": "object", "additionalProperties": False, "required": ["kind", "w"],
                 "properties": {"kind": {"const": "linear"}, "w": {"type": "array", "items": {"type": "number"}, "minItems": 1}}},
                {"type": "object", "additionalProperties": False, "required": ["kind", "point"],
                 "properties": {"kind": {"const": "distance"},
                                "point": {"type": "array", "items": {"type": "number"}, "minItems": 1}}},
            ],
        },
    }, stage="sample")

    def vector(self) -> np.ndarray:
        r = self.settings["reward"]
        return np.asarray(r["w"] if r["kind"] == "linear" else r["point"], dtype=float)

    def check(self, target):
        problem = super().check(target)
        if problem:
            return problem
        dim = target.feature_dim()
        if dim is not None and self.vector().size != dim:
            key = "w" if self.settings["reward"]["kind"] == "linear" else "point"
            return f"reward.{key} has {self.vector().size} entries; the {target.name} target's items have {dim}"
        return None

    def score(self, items, ctx: Context):
        x = ctx.target.features(items)
        v = self.vector()
        if x.shape[-1] != v.size:
            raise ConfigError(f"the reward vector has {v.size} entries, the items {x.shape[-1]}")
        if self.settings["reward"]["kind"] == "linear":
            return x @ v
        return -np.linalg.norm(x - v, axis=-1)


class Judge(Scorer):
    kind = "judge"
    description = "the judge classifier's confidence (largest class probability)"
    reads_reference = True
    hook = "judge_score"

    def score(self, items, ctx: Context):
        return ctx.target.judge_score(items, ctx.reference)
