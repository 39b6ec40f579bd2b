"""From a validated config mapping to the study's experiments and chains.

``config/schema.yaml`` is checked first (by ``snakemake.utils.validate`` in the
Snakefile, or :func:`validate_schema` here); then :meth:`Study.from_config`
expands sweeps, fills and checks each target's, regime's and curation step's
own settings schema, and asks every target whether it can run each chain.
Every problem is a :class:`ConfigError` naming the key and the allowed values,
raised before any job runs.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

from ouroboros import paths
from ouroboros import regimes as R
from ouroboros import seeding
from ouroboros.curation import Curation, scorer_class, selector_class
from ouroboros.regimes import Regime
from ouroboros.settings import STAGES, ConfigError, applicable, by_stage, check, check_finite, results_settings
from ouroboros.targets import REGISTRY, Target, make_target, target_class
from ouroboros.targets.capabilities import stats_sufficient

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
SWEEP_TOP = ("n", "lam", "replicates")


def load_schema(path: Optional[Path] = None) -> dict:
    """config/schema.yaml, with the experiment's ``target`` enum filled from the target registry (the one list of
    targets: a target is registered once, in :mod:`ouroboros.targets`)."""
    schema = yaml.safe_load(Path(path or DEFAULT_SCHEMA).read_text())
    schema["$defs"]["experiment"]["properties"]["target"]["enum"] = sorted(REGISTRY)
    return schema


def validate_schema(config: dict, schema: Optional[dict] = None) -> dict:
    """Check ``config`` against config/schema.yaml in place, filling defaults."""
    check(schema or load_schema(), config, "")
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
    curation: Optional[dict] = None
    #: the name of the experiment's random streams: its label without curation sweep values, so that
    #: experiments differing only in curation share real data and random numbers (a paired comparison)
    stream: str = ""
    #: the ``name`` of the config entry it was expanded from (the label without sweep values)
    name: str = ""

    def __post_init__(self):
        if not self.stream:
            object.__setattr__(self, "stream", self.label)
        if not self.name:
            object.__setattr__(self, "name", self.label)

    def make_target(self) -> Target:
        return make_target(self.target, self.params)

    def make_curation(self) -> Optional[Curation]:
        """The experiment's curation step (:meth:`Curation.from_spec`: built once, shared with its chain specs)."""
        return Curation.from_spec(self.curation)

    def candidates(self, m: int) -> int:
        """Samples a model draws so that m synthetic items remain after curation."""
        return Curation.candidates(self.make_curation(), m)

    def gen0_parts(self) -> list[int]:
        """Generation 0 is shared by the regimes: it draws the most candidates any regime needs, in parts
        ending where each regime's need ends, and a regime takes the first ones."""
        needs = sorted({self.candidates(r.n_synthetic(self.n)) for r in self.regimes} - {0})
        return [b - a for a, b in zip([0] + needs[:-1], needs)]

    def gen0_items(self) -> bool:
        """Whether generation 0's shared samples must be items: some regime of the experiment picks items, or
        the curation step does (then every chain draws generation 0 as items, so all share one S_0)."""
        return any(r.needs_points for r in self.regimes) or picks_items(self.make_curation(), self.target,
                                                                         self.params)


def picks_items(curation: Optional[Curation], target_name: str, params: dict) -> bool:
    """Whether a curation step picks individual items (not one that runs on the target's statistics)."""
    return curation is not None and not curation.on_statistics(make_target(target_name, params))


def canonical(value):
    """``value`` as JSON reads it back with every mapping's keys sorted: a rule param that does not change when
    a study file lists the same settings in another order (Snakemake compares params as written)."""
    return json.loads(json.dumps(value, sort_keys=True))


def results_config(study: "Study") -> dict:
    """The study's config without the settings no result depends on (stage ``none``: threads, devices, logging,
    limits): what the study's tracking job's rerun depends on, in a canonical order."""
    out = {k: v for k, v in study.config.items() if k not in ("limits",)}
    out["experiments"] = [dict(e, params=results_settings(target_class(e["target"]).params_schema,
                                                          e.get("params") or {}))
                          for e in study.config["experiments"]]
    return canonical(out)


def real_rng(study: str, experiment: str, seed: int) -> np.random.Generator:
    """Real data depend on (study, experiment stream, seed) only: every regime sees the same real data."""
    return seeding.generator(study, experiment, seed, "real")


#: the regime generation 0's jobs run under: it trains on the real data whatever the regime, and its streams
#: keep the name they always had (``replace``), so every regime of an experiment shares one generation 0
GEN0_REGIME = {"kind": "replace"}


@dataclass(frozen=True)
class ChainSpec:
    """What a job of one chain needs, and all its results depend on: not G, the block size or the other regimes
    (except generation 0's part sizes), so raising ``generations`` reruns nothing.  The typed form of a job's
    ``spec`` param: :meth:`to_params` and :meth:`from_params` are exact inverses."""

    study: str
    experiment: str
    stream: str
    target_name: str
    params: dict
    n: int
    replicates: int
    lam: float
    seed: int
    regime: Regime
    curation_spec: Optional[dict]
    gen0_parts: tuple[int, ...]
    #: generation 0's samples are items (:meth:`Experiment.gen0_items`)
    gen0_items: bool

    # -- params ----------------------------------------------------------------------------------
    def to_params(self) -> dict:
        """JSON-able: the rules' ``spec`` param (and the MLflow config hash)."""
        return {"study": self.study, "experiment": self.experiment, "stream": self.stream, "target": self.target_name,
                "params": self.params, "n": self.n, "replicates": self.replicates, "lam": self.lam, "seed": self.seed,
                "regime": self.regime.to_spec(), "curation": self.curation_spec, "gen0_parts": list(self.gen0_parts),
                "gen0_items": self.gen0_items}

    def by_stage(self) -> dict[str, dict]:
        return copy.deepcopy(self._by_stage)

    @functools.cached_property
    def _by_stage(self) -> dict[str, dict]:
        """What the chain's results depend on, by the stage each part changes first (:data:`~ouroboros.settings.STAGES`):
        {stage: {field: value}}, the target's settings under ``params`` split by the stages its schema declares
        (those of stage ``none``, such as threads, left out).  A job's rule carries the parts of its own stage and
        the stages before it as params, so a changed setting re-runs only the jobs of its stage and what reads
        their outputs (:meth:`upto`)."""
        out: dict[str, dict] = {s: {} for s in STAGES}
        for k, v in self.to_params().items():
            if k != "params":
                out[SPEC_STAGES[k]][k] = v
        for stage, settings in by_stage(target_class(self.target_name).params_schema, self.params).items():
            out[stage]["params"] = settings
        return canonical(out)

    def upto(self, stage: str) -> dict[str, dict]:
        """The parts of :meth:`by_stage` a job of ``stage`` depends on: its own and the stages before it."""
        parts = self.by_stage()
        return {s: parts[s] for s in STAGES[:STAGES.index(stage) + 1]}

    @classmethod
    def from_params(cls, params: dict) -> "ChainSpec":
        missing = sorted(set(SPEC_KEYS) - set(params))
        extra = sorted(set(params) - set(SPEC_KEYS))
        if missing or extra:
            raise ValueError("not a chain spec: " + "; ".join(
                part for part in (f"missing {missing}" if missing else "", f"unknown {extra}" if extra else "") if part))
        return cls(study=params["study"], experiment=params["experiment"], stream=params["stream"],
                   target_name=params["target"], params=dict(params["params"]), n=int(params["n"]),
                   replicates=int(params["replicates"]), lam=float(params["lam"]), seed=int(params["seed"]),
                   regime=R.from_spec(params["regime"]), curation_spec=params["curation"],
                   gen0_parts=tuple(int(x) for x in params["gen0_parts"]), gen0_items=bool(params["gen0_items"]))

    def gen0(self) -> "ChainSpec":
        """The spec of generation 0's jobs, shared by the experiment's regimes (no regime, no curation)."""
        return self._gen0

    @functools.cached_property
    def _gen0(self) -> "ChainSpec":
        return dataclasses.replace(self, regime=R.from_spec(GEN0_REGIME), curation_spec=None)

    # -- identity and streams ------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return f"{self.experiment}/{self.regime.label}/seed{self.seed}"

    def rng(self, generation: int, purpose: str) -> np.random.Generator:
        """Generation 0 trains on the same real data in every regime and uses the same streams (those named
        by :data:`GEN0_REGIME`), so all regimes of an experiment share an identical generation 0."""
        regime = self.regime.label if generation > 0 else GEN0_REGIME["kind"]
        return seeding.generator(self.study, self.stream, regime, self.seed, generation, purpose)

    def real_rng(self) -> np.random.Generator:
        return real_rng(self.study, self.stream, self.seed)

    # -- what the chain is made of ----------------------------------------------------------------------
    def target(self) -> Target:
        return make_target(self.target_name, self.params).for_regime(self.regime, curation=self.curation())

    def curation(self) -> Optional[Curation]:
        """The chain's curation step (:meth:`Curation.from_spec`: the experiment's own)."""
        return Curation.from_spec(self.curation_spec)

    def needs_items(self, generation: int) -> bool:
        """Whether a reader of generation g's samples needs items, not only their statistics: generation 0's
        readers are every regime of the experiment (:attr:`gen0_items`); later, this chain's regime and
        curation step."""
        if generation == 0:
            return self.gen0_items
        return self.regime.needs_points or self._curation_picks_items

    @functools.cached_property
    def _curation_picks_items(self) -> bool:
        return picks_items(self.curation(), self.target_name, self.params)

    def keeps_statistics(self, generation: int) -> bool:
        """Whether generation g's samples are kept as the target's statistics (drawn by
        ``sample_summaries``): the target's fit needs no more, and no reader needs the items."""
        cls = target_class(self.target_name)
        return stats_sufficient(cls) and not cls.evaluate_reads_items and not self.needs_items(generation)

    @property
    def pool_as_stats(self) -> bool:
        """Whether the pool of a regime that pools can be kept as sufficient statistics (else as points)."""
        return (stats_sufficient(target_class(self.target_name)) and not self.regime.needs_points
                and not self._curation_picks_items)

    @property
    def n_synthetic(self) -> int:
        """Synthetic items per training set (after curation)."""
        return self.regime.n_synthetic(self.n)

    @property
    def n_candidates(self) -> int:
        """Samples a generation's model draws for this chain (before curation)."""
        return Curation.candidates(self.curation(), self.n_synthetic)

    def emit_parts(self, generation: int) -> list[int]:
        """Sizes of the consecutive parts generation g's model draws (generation 0: shared by the regimes)."""
        if generation == 0:
            return list(self.gen0_parts)
        return [self.n_candidates] if self.n_candidates else []

    # -- the data flow ---------------------------------------------------------------------------------
    def reads(self, generation: int) -> list[int]:
        """The generations whose synthetic data generation g's training set is built from (for regimes that
        pool: all earlier ones, folded in order)."""
        return self.regime.sources(generation)

    def redrawn(self, last: int) -> list[int]:
        """The generations whose synthetic data a chain resumed after generation ``last`` re-draws: what
        generation last + 1 reads (none for a pool kept as sufficient statistics, which the state holds)."""
        if self.regime.pools and self.pool_as_stats:
            return []
        return self.reads(last + 1)

    def resume_models(self, last: int) -> list[int]:
        """The generations whose models a chain resumed after generation ``last`` needs besides its state
        (which holds generation 0's and the last one)."""
        return [j for j in self.redrawn(last) if j not in (0, last)]


SPEC_KEYS = ("study", "experiment", "stream", "target", "params", "n", "replicates", "lam", "seed", "regime",
             "curation", "gen0_parts", "gen0_items")
#: the stage each field of a chain spec changes first (``params``: each target setting's own, from its schema); the
#: config keys they come from declare the same in config/schema.yaml (a test holds them equal)
SPEC_STAGES = {"study": "data", "experiment": "data", "stream": "data", "target": "data", "n": "data",
               "replicates": "data", "seed": "data", "regime": "fit", "lam": "sample", "curation": "sample",
               "gen0_parts": "sample", "gen0_items": "sample"}


@dataclass(frozen=True)
class Chain:
    """One (experiment, regime, seed) chain of the study: generations 0..G of R replicates.  What its jobs
    need, and everything the chain is made of (its streams, target, curation step, data flow), is :attr:`job`
    (a :class:`ChainSpec`); the study side adds the experiment's G, block size, seeds, and the files."""

    study: str
    experiment: Experiment
    regime: Regime
    seed: int

    @functools.cached_property
    def job(self) -> ChainSpec:
        e = self.experiment
        return ChainSpec(study=self.study, experiment=e.label, stream=e.stream, target_name=e.target, params=e.params,
                         n=e.n, replicates=e.replicates, lam=e.lam, seed=self.seed, regime=self.regime,
                         curation_spec=e.curation, gen0_parts=tuple(e.gen0_parts()), gen0_items=e.gen0_items())

    def real_spec(self) -> dict:
        """What the real-data job gets: not the regime, lam, curation or G (its rerun trigger is the ``data`` part
        of :meth:`ChainSpec.by_stage`)."""
        e = self.experiment
        return {"study": self.study, "experiment": e.label, "stream": e.stream, "target": e.target, "params": e.params,
                "n": e.n, "replicates": e.replicates, "seed": self.seed}

    def results_params(self) -> dict:
        """The target settings some result depends on (not threads, device, logging)."""
        return results_settings(target_class(self.experiment.target).params_schema, self.experiment.params)

    def spec(self) -> dict:
        """The jobs' ``spec`` param (:meth:`ChainSpec.to_params`)."""
        return self.job.to_params()

    def gen0_spec(self) -> dict:
        """What generation 0's jobs get: the experiment and seed, not the regime."""
        return self.job.gen0().to_params()

    def columns(self) -> dict:
        """The chain's columns in the tidy metrics table (and its settings table: not the target settings no result
        depends on, such as threads)."""
        e = self.experiment
        cols = {"study": self.study, "experiment": e.label, "target": e.target, "regime": self.regime.label,
                "regime_kind": self.regime.kind, "seed": self.seed, "n": e.n, "lam": e.lam, "replicates": e.replicates}
        cols.update({k: v for k, v in self.regime.columns().items() if k not in cols})
        cur = self.job.curation()
        if cur is not None:
            cols.update(cur.columns())
        for k, v in applicable(target_class(e.target).params_schema, self.results_params()).items():
            if isinstance(v, (int, float, str, bool)) and k not in cols:
                cols[k] = v
        return cols

    # -- files -------------------------------------------------------------------------------
    def dir(self) -> str:
        return paths.chain_dir(self.study, self.experiment.label, self.regime.label, self.seed)


@dataclass
class Study:
    name: str
    experiments: list[Experiment]
    chains: list[Chain]
    config: dict

    @classmethod
    def from_config(cls, config: dict, schema: Optional[dict] = None, validated: bool = False,
                    checked: bool = False) -> "Study":
        """``checked``: the config passed every check before (a job rebuilding the plan the workflow built), so
        the targets', regimes' and curation steps' own run checks are skipped (the VAE's loads its data set)."""
        config = config if validated else validate_schema(copy.deepcopy(config), schema)
        if validated:
            check_finite(config, "")
        schema = schema or load_schema()
        exp_schema = dict(schema["$defs"]["experiment"])
        experiments: list[Experiment] = []
        for i, raw in enumerate(config["experiments"]):
            experiments.extend(_expand(config, raw, i, exp_schema, checked))
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


def _regime_entry(entry: Any, where: str) -> dict:
    """A regimes list entry as ``{"kind": ..., **settings}``."""
    if isinstance(entry, str):
        return {"kind": entry}
    if isinstance(entry, dict) and "kind" in entry:
        return dict(entry)
    raise ConfigError(f"invalid config at {where}: a regime is a kind name or {{kind: ..., settings...}}, got {entry!r}")


def _sweep_groups(exp: dict, cls_t) -> dict[str, set[str]]:
    """Which settings a sweep key may name: top-level, target params, regime settings, curation settings."""
    groups = {"top": set(SWEEP_TOP), "params": set(cls_t.params_schema.get("properties", {})), "regime": set(),
              "curation": set()}
    for entry in exp.get("regimes", []):
        kind = entry["kind"] if isinstance(entry, dict) else entry
        try:
            groups["regime"] |= set(R.regime_class(kind).settings_schema["properties"])
        except ConfigError:
            pass
    cur = exp.get("curation")
    if isinstance(cur, dict):
        groups["curation"] |= {"selector", "scorer"}
        for key, load in (("selector", selector_class), ("scorer", scorer_class)):
            if cur.get(key) not in (None, "none"):
                try:
                    groups["curation"] |= set(load(cur[key]).settings_schema["properties"])
                except ConfigError:
                    pass
    return groups


def _resolve_sweep_key(key: str, groups: dict[str, set[str]], where: str) -> tuple[str, str]:
    """(group, setting) for a sweep key: ``d``, ``rho``, ``q`` or a dotted ``params.d``, ``regime.rho``,
    ``curation.q``."""
    aliases = {"params": "params", "regime": "regime", "regimes": "regime", "curation": "curation"}
    if "." in key:
        head, name = key.split(".", 1)
        group = aliases.get(head)
        if group and name in groups[group]:
            return group, name
    else:
        hits = [g for g, names in groups.items() if key in names]
        if len(hits) == 1:
            return hits[0], key
        if len(hits) > 1:
            raise ConfigError(f"invalid config at {where}.sweep: {key!r} is a setting of several parts "
                              f"({', '.join(hits)}); write it as {' or '.join(f'{h}.{key}' for h in hits if h != 'top')}")
    allowed = sorted(groups["top"] | groups["params"] | {f"regime.{k}" for k in groups["regime"]}
                     | {f"curation.{k}" for k in groups["curation"]} | groups["regime"] | groups["curation"])
    raise ConfigError(f"invalid config at {where}.sweep: unknown key {key!r}; allowed keys: {', '.join(allowed)}")


#: the most experiments one sweep expands to (each is read, checked and planned before any job)
MAX_SWEEP_POINTS = 2_000


def _expand(config: dict, raw: dict, index: int, exp_schema: dict, checked: bool = False) -> list[Experiment]:
    where = f"experiments[{index}]"
    name = raw.get("name", raw["target"])
    cls_t = target_class(raw["target"])
    sweep = raw.get("sweep") or {}
    groups = _sweep_groups(raw, cls_t)
    resolved = {key: _resolve_sweep_key(key, groups, where) for key in sweep}
    keys = list(sweep)
    points = math.prod(len(sweep[k]) for k in keys)
    if points > MAX_SWEEP_POINTS:
        sizes = " x ".join(f"{k} {len(sweep[k]):,}" for k in keys)
        raise ConfigError(f"invalid config at {where}.sweep: its grid is {points:,} experiments ({sizes}); at most "
                          f"{MAX_SWEEP_POINTS:,} in one study (split it into studies, or sweep fewer values)")
    out = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        exp = copy.deepcopy(raw)
        exp.pop("sweep", None)
        exp.setdefault("params", {})
        entries = [_regime_entry(r, f"{where}.regimes[{i}]") for i, r in enumerate(exp.get("regimes", ["replace"]))]
        for k, v in zip(keys, values):
            group, setting = resolved[k]
            if group == "top":
                exp[setting] = v
            elif group == "params":
                exp["params"][setting] = v
            elif group == "regime":
                for entry in entries:
                    if setting in R.regime_class(entry["kind"]).settings_schema["properties"]:
                        entry[setting] = v
            else:
                exp["curation"][setting] = v
        exp["regimes"] = entries
        label = name + "".join(f"_{k.split('.')[-1]}{_fmt(v)}" for k, v in zip(keys, values))
        stream = exp.get("streams", name) + "".join(f"_{k.split('.')[-1]}{_fmt(v)}" for k, v in zip(keys, values)
                                                    if resolved[k][0] != "curation")
        w = where if not keys else f"{where} (sweep {label})"
        check(exp_schema, exp, w)
        check(cls_t.params_schema, exp["params"], f"{w}.params")
        try:
            target = make_target(exp["target"], exp["params"])
        except (ValueError, TypeError) as e:
            raise ConfigError(f"invalid config at {w}.params: {e}") from None
        block = exp.get("block", cls_t.default_block)
        if cls_t.max_block is not None and block > cls_t.max_block:
            raise ConfigError(f"invalid config at {w}.block: target {exp['target']} runs at most {cls_t.max_block} generation(s) per job")
        curation = cur = None
        if exp.get("curation"):
            cur = Curation(exp["curation"], f"{w}.curation")
            problem = None if checked else cur.check(target)
            if problem:
                raise ConfigError(f"invalid config at {w}.curation: {problem}")
            curation = cur.to_spec()
        problem = None if checked else target.check_experiment(exp["n"], exp["replicates"])
        if problem:  # the experiment's own problem, named as such, not under its first regime
            raise ConfigError(f"invalid config at {w} (experiment {label}): {problem}")
        regimes = []
        for i, entry in enumerate(entries):
            regime = R.from_spec_at(entry, f"{w}.regimes[{i}]")
            problem = None if checked else regime.check(exp["n"]) or regime.check_target(target) or target.for_regime(
                regime, curation=cur).check(regime, exp["n"], exp["replicates"])
            if problem:
                raise ConfigError(f"invalid config at {w}: regime {regime.label}: {problem}")
            regimes.append(regime)
        labels = [r.label for r in regimes]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"invalid config at {w}.regimes: two regimes have the same label ({labels})")
        out.append(Experiment(label=label, target=exp["target"], params=exp["params"], n=exp["n"],
                              replicates=exp["replicates"], lam=float(exp["lam"]),
                              generations=exp.get("generations", config["generations"]), block=block,
                              regimes=tuple(regimes), sweep=dict(zip(keys, values)),
                              seeds=tuple(exp.get("seeds", config["seeds"])), curation=curation, stream=stream,
                              name=name))
    return out


def put_package_on_pythonpath(basedir: str) -> None:
    """Put the checkout's ``workflow/`` folder (which holds the ``ouroboros`` package) first on
    ``PYTHONPATH`` for every job Snakemake starts, so jobs import this checkout's package also in
    environments where it is not installed (``--use-conda``)."""
    folder = str(Path(basedir) / "workflow")
    parts = [folder] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != folder]
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
