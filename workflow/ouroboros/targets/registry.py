"""The target registry: name -> "module:Class", each module imported on first use (a Gaussian job never imports
torch).  A new target is one module plus one line here."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ouroboros.settings import load_registered

if TYPE_CHECKING:
    from ouroboros.targets.base import Target

#: name -> "module:Class"
REGISTRY: dict[str, str] = {
    "gaussian": "ouroboros.targets.gaussian:GaussianTarget",
    "gmm": "ouroboros.targets.gmm:GMMTarget",
    "vae": "ouroboros.targets.vae:VAETarget",
    "lm": "ouroboros.targets.lm:LMTarget",
    "categorical": "ouroboros.targets.categorical:CategoricalTarget",
    "linreg": "ouroboros.targets.linreg:LinRegTarget",
    "diffusion": "ouroboros.targets.diffusion:DiffusionTarget",
    "kde": "ouroboros.targets.kde:KDETarget",
}


def target_class(name: str) -> type[Target]:
    return load_registered(REGISTRY, name, "target")


def make_target(name: str, params: dict | None = None) -> Target:
    return target_class(name)(**(params or {}))
