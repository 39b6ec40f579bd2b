"""The curation protocol: a step between a generation's samples and the next training set.

The model draws candidates; a :class:`Scorer` (a verifier) scores them; a
:class:`Selector` keeps what the regime needs.  Both are registries (one class
per kind, each with its own settings schema); :class:`~ouroboros.curation.Curation`
composes one of each from an experiment's flat ``curation:`` mapping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from ouroboros.curation.registry import SCORERS, scorer_class
from ouroboros.settings import fill, settings_schema
from ouroboros.targets.capabilities import curation_hooks


@dataclass
class Context:
    """What scorers may use: the current model (the one that drew the candidates), the generation-0 model,
    the experiment's target (which knows the truth), the reference material and a random stream."""

    model: Any
    gen0: Any
    target: Any
    reference: dict
    rng: np.random.Generator


class Scorer:
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings_schema: ClassVar[dict] = settings_schema({})
    #: the target hook this scorer calls (a target lists what it provides in ``curation_hooks``)
    hook: ClassVar[str] = ""
    #: whether it reads the experiment's reference material (a judge): the curation jobs then read the
    #: experiment's curation reference, made by its own job (so that a changed evaluate setting, which re-makes
    #: the evaluation reference, re-runs no curation)
    reads_reference: ClassVar[bool] = False

    def __init__(self, **settings: Any):
        self.settings = fill(self.settings_schema, settings, f"curation scorer {self.kind}")

    def check(self, target) -> Optional[str]:
        if self.hook not in curation_hooks(target):
            provided = sorted(k for k, s in _scorer_hooks().items() if s in curation_hooks(target))
            return (f"target {target.name} cannot provide the scorer {self.kind!r}; "
                    f"scorers it provides: {', '.join(provided) or 'none'}")
        return None

    def score(self, items, ctx: Context) -> np.ndarray:
        """Scores shaped (R, N) for candidates (R, N, ...); higher is better."""
        raise NotImplementedError


def _scorer_hooks() -> dict[str, str]:
    return {k: scorer_class(k).hook for k in SCORERS}


class Selector:
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings_schema: ClassVar[dict] = settings_schema({})
    #: whether a scorer is required (else optional: used for the score metrics only)
    needs_scores: ClassVar[bool] = True
    #: whether it reads the experiment's reference material (see :attr:`Scorer.reads_reference`)
    reads_reference: ClassVar[bool] = False

    def __init__(self, **settings: Any):
        self.settings = fill(self.settings_schema, settings, f"curation selector {self.kind}")

    def n_candidates(self, m: int) -> int:
        """Candidates the model must draw so that m items can be kept."""
        return int(math.ceil(self.settings.get("oversample", 1) * m - 1e-9))

    def check(self, target) -> Optional[str]:
        return None

    def transform(self, candidates, ctx: Context):
        """The candidates as the selector sees them (default: unchanged; ``correct`` moves each one)."""
        return candidates

    def select(self, candidates, scores: Optional[np.ndarray], m: int, rng: np.random.Generator,
               ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(indices (R, m) into the candidates, validity (R, m)): the kept items of every replicate, in order."""
        raise NotImplementedError

    def on_counts(self, target) -> bool:
        """Whether this selector can keep items from their category counts alone (:meth:`select_counts`), with
        the same distribution as :meth:`select` on the items; then chains never draw the items."""
        return False

    def select_counts(self, counts: np.ndarray, m: int, rng: np.random.Generator, ctx: Context) -> np.ndarray:
        """The kept counts (R, K) from the candidates' counts (R, K); where :meth:`on_counts`."""
        raise NotImplementedError


#: the ``oversample`` setting of the selectors that draw a multiple of what they keep
OVERSAMPLE = {"type": "number", "minimum": 1, "default": 1,
              "description": "the model draws ceil(oversample * m) candidates"}


def best_first(scores: np.ndarray) -> np.ndarray:
    """Indices sorting each replicate's scores from best to worst (ties keep candidate order)."""
    return np.argsort(-scores, axis=1, kind="stable")
