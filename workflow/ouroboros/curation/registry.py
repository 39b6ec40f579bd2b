"""The curation registries: selector and scorer kinds -> "module:Class", imported on first use.  A new kind is one
module (or class) plus one line here."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ouroboros.settings import load_registered

if TYPE_CHECKING:
    from ouroboros.curation.base import Scorer, Selector

#: selector kind -> "module:Class"
SELECTORS: dict[str, str] = {
    "top": "ouroboros.curation.top:Top",
    "threshold": "ouroboros.curation.threshold:Threshold",
    "choice": "ouroboros.curation.choice:Choice",
    "random": "ouroboros.curation.control:RandomSelector",
    "dedup": "ouroboros.curation.dedup:Dedup",
    "correct": "ouroboros.curation.correct:Correct",
}
#: scorer kind -> "module:Class"
SCORERS: dict[str, str] = {
    "truth": "ouroboros.curation.scorers:Truth",
    "noisy": "ouroboros.curation.scorers:Noisy",
    "gen0": "ouroboros.curation.scorers:Gen0",
    "self": "ouroboros.curation.scorers:Self",
    "ratio": "ouroboros.curation.scorers:Ratio",
    "reward": "ouroboros.curation.scorers:Reward",
    "judge": "ouroboros.curation.scorers:Judge",
}


def selector_class(kind: str) -> type[Selector]:
    return load_registered(SELECTORS, kind, "curation selector")


def scorer_class(kind: str) -> type[Scorer]:
    return load_registered(SCORERS, kind, "curation scorer")
