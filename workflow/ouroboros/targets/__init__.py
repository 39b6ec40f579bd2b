"""Targets: the model families a collapse chain can train.

A target is one module with one :class:`~ouroboros.targets.base.Target`
subclass, registered here by name.  Adding a target changes no rule: add the
module and register it below (the config schema's target enum is filled from this registry).
Modules are imported lazily so a Gaussian job never imports torch.
"""
from __future__ import annotations

from ouroboros.settings import load_registered
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
}


def target_class(name: str) -> type[Target]:
    return load_registered(REGISTRY, name, "target")


def make_target(name: str, params: dict | None = None) -> Target:
    return target_class(name)(**(params or {}))


__all__ = ["REGISTRY", "Target", "make_target", "target_class"]
