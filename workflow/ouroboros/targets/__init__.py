"""Targets: the model families a collapse chain can train.

A target is one module with one :class:`~ouroboros.targets.base.Target` subclass, registered by name in
:mod:`ouroboros.targets.registry`.  Adding a target changes no rule: add the module and its registry line (the
config schema's target enum is filled from the registry).  Modules are imported lazily so a Gaussian job never
imports torch.
"""
from __future__ import annotations

from ouroboros.targets.base import Target
from ouroboros.targets.registry import REGISTRY, make_target, target_class

__all__ = ["REGISTRY", "Target", "make_target", "target_class"]
