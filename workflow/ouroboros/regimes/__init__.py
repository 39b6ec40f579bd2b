"""Regimes: how each generation's training set is built, one module per kind.

Adding a regime kind: write a module with a :class:`~ouroboros.regimes.base.Regime`
subclass (its ``kind``, ``settings_schema``, ``label``, ``build`` and, where
they differ from the defaults, ``n_real``/``n_synthetic``/``sources``/``uses_real``/``pools``)
and add one line to :data:`REGISTRY`.  Configs name it in an experiment's
``regimes`` list (``replace`` or ``{kind: mix, rho: 0.1}``); no rule or schema
changes.  The chain engine reads the data flow the regime declares, in every
execution mode, and ``tests/test_regime_modes.py`` holds every registered kind
to giving the same numbers in blocks and one generation per job
(``regimes/window.py`` is such a module).
"""
from __future__ import annotations

from typing import Any

from ouroboros.regimes.base import Pool, Regime, Sources
from ouroboros.settings import ConfigError, check, load_registered

#: kind -> "module:Class"
REGISTRY: dict[str, str] = {
    "replace": "ouroboros.regimes.replace:Replace",
    "accumulate": "ouroboros.regimes.accumulate:Accumulate",
    "accumulate-subsample": "ouroboros.regimes.accumulate_subsample:AccumulateSubsample",
    "mix": "ouroboros.regimes.mix:Mix",
    "window": "ouroboros.regimes.window:Window",
}


def regime_class(kind: str) -> type[Regime]:
    return load_registered(REGISTRY, kind, "regime")


def make_regime(kind: str, **settings: Any) -> Regime:
    return regime_class(kind)(**settings)


def from_spec(spec: Any) -> Regime:
    """A regime from its spec: a kind name, or ``{"kind": ..., **settings}`` (what :meth:`Regime.to_spec` gives)."""
    if isinstance(spec, Regime):
        return spec
    if isinstance(spec, str):
        return make_regime(spec)
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"a regime is a kind name or a mapping with 'kind' and its settings, got {spec!r}")
    settings = {k: v for k, v in spec.items() if k != "kind"}
    return make_regime(spec["kind"], **settings)


def from_spec_at(spec: Any, at: str) -> Regime:
    """:func:`from_spec` for a config entry: a problem is a ConfigError naming ``at`` (the entry's place)."""
    entry = {"kind": spec} if isinstance(spec, str) else dict(spec)
    if entry.get("kind") not in REGISTRY:
        raise ConfigError(f"invalid config at {at}.kind: unknown regime {entry.get('kind')!r}; "
                          f"allowed values: {', '.join(REGISTRY)}")
    settings = {k: v for k, v in entry.items() if k != "kind"}
    check(regime_class(entry["kind"]).settings_schema, settings, at)
    try:
        return make_regime(entry["kind"], **settings)
    except ConfigError as e:
        raise ConfigError(f"invalid config at {at}: {e}") from None


__all__ = ["REGISTRY", "Pool", "Regime", "Sources", "from_spec", "from_spec_at", "make_regime", "regime_class"]
