"""From a validated config mapping to the study's experiments and chains.

``config/schema.yaml`` is checked first (by ``snakemake.utils.validate`` in the
Snakefile, or :func:`validate_schema` here); then :meth:`Study.from_config`
expands sweeps, fills and checks each target's own ``params`` schema, and asks
every target whether it can run each chain.  Every problem is a
:class:`ConfigError` naming the key and the allowed values, raised before any
job runs.
"""
from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from workflow import seeding
from workflow.regimes import Regime
from workflow.targets import REGISTRY, Target, make_target, target_class

DEFAULT_SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"
SWEEP_TOP = ("n", "lam", "replicates")
SWEEP_MIX = ("rho", "fresh")


class ConfigError(ValueError):
    """The study configuration is invalid; the message names the key."""


def _validator(schema: dict):
    """A draft 2020-12 validator that also fills in defaults."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    props = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from props(validator, properties, instance, schema)

    cls = jsonschema.validators.extend(base, {"properties": set_defaults})
    return cls(schema)


def _where(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _check(schema: dict, instance: Any, where: str) -> None:
    errors = sorted(_validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        loc = _where(list(e.absolute_path))
        allowed = ""
        if "enum" in e.schema:
            allowed = f"; allowed values: {', '.join(map(str, e.schema['enum']))}"
        raise ConfigError(f"invalid config at {where}{'' if loc == '(top level)' else '.' + loc}: {e.message}{allowed}")


def load_schema(path: Optional[Path] = None) -> dict:
    import yaml

    return yaml.safe_load(Path(path or DEFAULT_SCHEMA).read_text())


def validate_schema(config: dict, schema: Optional[dict] = None) -> dict:
    """Check ``config`` against config/schema.yaml in place, filling defaults."""
    _check(schema or load_schema(), config, "config")
    return config


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (int, str)):
        return str(v)
    return json.dumps(v, separators=(",", ":"))


@dataclass(frozen=True)
class Experiment:
    label: str
    target: str
    params: dict
    n: int
    replicates: int
    lam: float
    generations: int
    block: int
    regimes: tuple[Regime, ...]
    sweep: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)

    def make_target(self) -> Target:
        return make_target(self.target, self.params)


def real_rng(study: str, experiment: str, seed: int) -> np.random.Generator:
    """Real data depend on (study, experiment, seed) only: every regime sees the same real data."""
    return seeding.generator(study, experiment, seed, "real")


@dataclass(frozen=True)
class Chain:
    """One (experiment, regime, seed) chain: generations 0..G of R replicates."""

    study: str
    experiment: Experiment
    regime: Regime
    seed: int

    @property
    def path(self) -> str:
        return f"{self.experiment.label}/{self.regime.label}/seed{self.seed}"

    def rng(self, generation: int, purpose: str) -> np.random.Generator:
        """Generation 0 trains on the same real data in every regime and uses the same streams (those of
        ``replace``), so all regimes of an experiment share an identical generation 0 (a paired comparison)."""
        regime = self.regime.label if generation > 0 else "replace"
        return seeding.generator(self.study, self.experiment.label, regime, self.seed, generation, purpose)

    def real_rng(self) -> np.random.Generator:
        return real_rng(self.study, self.experiment.label, self.seed)

    def real_spec(self) -> dict:
        """What the real data depend on: not the regime, lam or G."""
        e = self.experiment
        return {"study": self.study, "experiment": e.label, "target": e.target, "params": e.params, "n": e.n,
                "replicates": e.replicates, "seed": self.seed}

    def target(self) -> Target:
        return self.experiment.make_target().for_regime(self.regime)

    @property
    def pool_as_stats(self) -> bool:
        """Whether the accumulate pool can be kept as sufficient statistics (else as points)."""
        return target_class(self.experiment.target).stats_sufficient and not self.regime.needs_points

    @property
    def pool_keeps_points(self) -> bool:
        """Whether resuming mid-chain must rebuild a pool of points from every earlier model."""
        return self.regime.pools and not self.pool_as_stats

    @property
    def n(self) -> int:
        return self.experiment.n

    def spec(self) -> dict:
        """JSON-able description of everything a generation's result depends on (not G)."""
        e = self.experiment
        return {"study": self.study, "experiment": e.label, "target": e.target, "params": e.params, "n": e.n,
                "replicates": e.replicates, "lam": e.lam, "seed": self.seed,
                "regime": {"kind": self.regime.kind, "rho": self.regime.rho, "fresh": self.regime.fresh}}

    @classmethod
    def from_spec(cls, spec: dict) -> "Chain":
        cls_t = target_class(spec["target"])
        exp = Experiment(label=spec["experiment"], target=spec["target"], params=dict(spec["params"]), n=int(spec["n"]),
                         replicates=int(spec["replicates"]), lam=float(spec["lam"]), generations=0,
                         block=cls_t.default_block, regimes=())
        return cls(spec["study"], exp, Regime(**spec["regime"]), int(spec["seed"]))

    def columns(self) -> dict:
        """The chain's columns in the tidy metrics table."""
        e = self.experiment
        cols = {"study": self.study, "experiment": e.label, "target": e.target, "regime": self.regime.label,
                "seed": self.seed, "n": e.n, "lam": e.lam, "rho": self.regime.rho if self.regime.kind == "mix" else np.nan,
                "fresh": self.regime.fresh if self.regime.kind == "mix" else False, "replicates": e.replicates}
        for k, v in e.params.items():
            if isinstance(v, (int, float, str, bool)) and k not in cols:
                cols[k] = v
        return cols


@dataclass
class Study:
    name: str
    experiments: list[Experiment]
    chains: list[Chain]
    config: dict

    @classmethod
    def from_config(cls, config: dict, schema: Optional[dict] = None, validated: bool = False) -> "Study":
        config = config if validated else validate_schema(copy.deepcopy(config), schema)
        schema = schema or load_schema()
        exp_schema = dict(schema["$defs"]["experiment"])
        experiments: list[Experiment] = []
        for i, raw in enumerate(config["experiments"]):
            experiments.extend(_expand(config, raw, i, exp_schema))
        labels = [e.label for e in experiments]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ConfigError(f"invalid config at experiments: duplicate experiment names {dup}; give each a distinct 'name'")
        chains = [Chain(config["study"], e, r, s) for e in experiments for r in e.regimes for s in e.seeds]
        return cls(config["study"], experiments, chains, config)

    def experiment(self, label: str) -> Experiment:
        for e in self.experiments:
            if e.label == label:
                return e
        raise KeyError(label)

    def chain(self, label: str, regime: str, seed: int) -> Chain:
        for c in self.chains:
            if c.experiment.label == label and c.regime.label == regime and c.seed == int(seed):
                return c
        raise KeyError((label, regime, seed))


def _expand(config: dict, raw: dict, index: int, exp_schema: dict) -> list[Experiment]:
    where = f"experiments[{index}]"
    name = raw.get("name", raw["target"])
    cls_t = target_class(raw["target"])
    sweep = raw.get("sweep") or {}
    allowed = set(SWEEP_TOP) | set(SWEEP_MIX) | set(cls_t.params_schema.get("properties", {}))
    for key in sweep:
        if key not in allowed:
            raise ConfigError(f"invalid config at {where}.sweep: unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}")
    keys = list(sweep)
    out = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        exp = copy.deepcopy(raw)
        exp.pop("sweep", None)
        exp.setdefault("params", {})
        exp.setdefault("mix", {})
        for k, v in zip(keys, values):
            if k in SWEEP_TOP:
                exp[k] = v
            elif k in SWEEP_MIX:
                exp["mix"][k] = v
            else:
                exp["params"][k] = v
        label = name + "".join(f"_{k}{_fmt(v)}" for k, v in zip(keys, values))
        w = where if not keys else f"{where} (sweep {label})"
        _check(exp_schema, exp, w)
        _check(cls_t.params_schema, exp["params"], f"{w}.params")
        try:
            target = make_target(exp["target"], exp["params"])
        except (ValueError, TypeError) as e:
            raise ConfigError(f"invalid config at {w}.params: {e}") from None
        block = exp.get("block", cls_t.default_block)
        if cls_t.max_block is not None and block > cls_t.max_block:
            raise ConfigError(f"invalid config at {w}.block: target {exp['target']} runs at most {cls_t.max_block} generation(s) per job")
        regimes = []
        for kind in exp["regimes"]:
            regime = Regime(kind, rho=float(exp["mix"]["rho"]), fresh=bool(exp["mix"]["fresh"])) if kind == "mix" else Regime(kind)
            problem = target.for_regime(regime).check(regime, exp["n"], exp["replicates"])
            if problem:
                raise ConfigError(f"invalid config at {w}: regime {regime.label}: {problem}")
            regimes.append(regime)
        out.append(Experiment(label=label, target=exp["target"], params=exp["params"], n=exp["n"],
                              replicates=exp["replicates"], lam=float(exp["lam"]),
                              generations=exp.get("generations", config["generations"]), block=block,
                              regimes=tuple(regimes), sweep=dict(zip(keys, values)),
                              seeds=tuple(exp.get("seeds", config["seeds"]))))
    return out


def check_registry_matches_schema(schema: Optional[dict] = None) -> None:
    enum = set((schema or load_schema())["$defs"]["experiment"]["properties"]["target"]["enum"])
    if enum != set(REGISTRY):
        raise RuntimeError(f"config/schema.yaml lists targets {sorted(enum)} but the registry has {sorted(REGISTRY)}")


def put_checkout_on_pythonpath(basedir: str) -> None:
    """Put the checkout first on ``PYTHONPATH`` for every job Snakemake starts, so jobs import this
    checkout's ``workflow`` package also in environments where it is not installed (``--use-conda``)."""
    import os

    parts = [str(basedir)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(basedir)]
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
