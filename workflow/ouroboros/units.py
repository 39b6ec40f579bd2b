"""The study's units of work as files: which blocks a chain runs and where each generation's files are, the
tracking units a tracking job logs (typed, and back from rule params exactly), the tracking groups, and what
reads a generation's weights.  Below :mod:`ouroboros.plan` (which the Snakefile holds), beside
:mod:`ouroboros.costs` and :mod:`ouroboros.preflight` (which count them) and :mod:`ouroboros.tracking` (which
logs them); paths come from :mod:`ouroboros.paths`.

* :class:`BlockUnit`: the generations first..last of a chain computed by one block job;
* :class:`GenerationUnit`: one generation of a chain run one generation per job (``shared``: an
  experiment's generation 0, computed and tracked once per seed for all its regimes).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, Union

from ouroboros import backbones, paths
from ouroboros.blocks import completed_blocks, plan_blocks
from ouroboros.config import Chain, Study
from ouroboros.targets.torch_base import kept


def blocks(chain: Chain) -> list[tuple[int, int]]:
    """The blocks of generations the chain runs as, reusing blocks already on disk."""
    e = chain.experiment
    return plan_blocks(e.generations, e.block, completed_blocks(chain.dir()))


def block_files(chain: Chain, first: int, last: int) -> paths.BlockFiles:
    return paths.block(chain.study, chain.experiment.label, chain.regime.label, chain.seed, first, last)


def generation_files(chain: Chain, g: int) -> paths.GenerationFiles:
    """Generation g's folder (generation 0: the one the experiment's regimes share)."""
    return paths.generation(chain.study, chain.experiment.label, chain.regime.label, chain.seed, g)


def curation_files(chain: Chain, g: int) -> paths.GenerationFiles:
    """The chain's own generation folder, where its curated data and curation metrics lie."""
    return paths.curation(chain.study, chain.experiment.label, chain.regime.label, chain.seed, g)


def real_path(chain: Chain) -> str:
    return paths.real_data(chain.study, chain.experiment.label, chain.seed)


def job_benchmarks(chain: Chain, g: int) -> dict[str, str]:
    """rule -> the Snakemake benchmark file (run time, peak memory) of generation g's train, generate and
    evaluate jobs (generation 0's: the experiment's shared ones), beside their logs."""
    node = paths.node(chain.regime.label if g else None, chain.seed)
    folder = paths.node_log_dir(chain.study, chain.experiment.label, node, g)
    return {rule: f"{folder}/{rule}.benchmark.tsv" for rule in ("train", "generate", "evaluate")}


@dataclass(frozen=True)
class BlockUnit:
    """Generations first..last of a chain, computed by one block job: what its tracking logs."""

    kind: ClassVar[str] = "block"
    spec: dict
    first: int
    last: int
    #: a child run and a model every ``every``-th generation (and the block's last)
    every: int
    #: the chain's parent run gets every ``parent_stride``-th generation's metrics
    parent_stride: int
    dir: str
    real: str
    bench: dict = field(default_factory=dict)

    @classmethod
    def of(cls, chain: Chain, first: int, last: int, every: int, parent_points: int) -> "BlockUnit":
        logs = paths.chain_log_dir(chain.study, chain.experiment.label, chain.regime.label, chain.seed)
        stride = -(-(chain.experiment.generations + 1) // parent_points)  # ceil
        return cls(spec=chain.spec(), first=first, last=last, every=every, parent_stride=stride,
                   dir=block_files(chain, first, last).dir, real=real_path(chain),
                   bench={"block": f"{logs}/gens{first}-{last}.benchmark.tsv",
                          "block_evaluate": f"{logs}/gens{first}-{last}.evaluate.benchmark.tsv"})

    @property
    def generations(self) -> list[int]:
        """The generations that get a child run."""
        return [g for g in range(self.first, self.last + 1) if g % self.every == 0 or g == self.last]

    def files(self) -> list[str]:
        """What the unit reads (the tracking job's inputs)."""
        block = paths.BlockFiles(self.dir)
        return [block.metrics, block.models, *self.bench.values(), self.real]

    def to_params(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class GenerationUnit:
    """One generation of a chain run one generation per job: what its tracking logs."""

    kind: ClassVar[str] = "generation"
    spec: dict
    gen: int
    #: an experiment's generation 0, tracked once per seed for all its regimes
    shared: bool
    dir: str
    real: str
    bench: dict = field(default_factory=dict)
    #: more metrics files logged with this generation (curation metrics; at generation 1 also generation 0's)
    extra: tuple = ()
    #: whether the generation keeps its weights (the ``keep`` setting): else its run logs no model
    weights: bool = True

    @classmethod
    def of(cls, chain: Chain, g: int) -> "GenerationUnit":
        extra = []
        if g == 1:
            extra.append(generation_files(chain, 0).metrics)
        if g > 0 and chain.experiment.curation is not None:
            extra += [curation_files(chain, j).curation_metrics for j in ([0, 1] if g == 1 else [g])]
        return cls(spec=chain.gen0_spec() if g == 0 else chain.spec(), gen=g, shared=g == 0,
                   dir=generation_files(chain, g).dir, real=real_path(chain), bench=job_benchmarks(chain, g),
                   extra=tuple(extra), weights=g not in pruned_generations(chain))

    @property
    def generations(self) -> list[int]:
        return [self.gen]

    def files(self) -> list[str]:
        here = paths.GenerationFiles(self.dir)
        return [here.model, here.samples, here.metrics, here.trainset, *self.bench.values(), *self.extra, self.real]

    def to_params(self) -> dict:
        out = {"kind": self.kind, **asdict(self)}
        out["extra"] = list(self.extra)
        return out


Unit = Union[BlockUnit, GenerationUnit]
UNITS = {cls.kind: cls for cls in (BlockUnit, GenerationUnit)}


def unit_from_params(params: dict) -> Unit:
    """The unit :meth:`to_params` described (a problem names the field)."""
    params = dict(params)
    kind = params.pop("kind", None)
    if kind not in UNITS:
        raise ValueError(f"not a tracking unit: kind {kind!r} (allowed: {', '.join(UNITS)})")
    if "extra" in params:
        params["extra"] = tuple(params["extra"])
    try:
        return UNITS[kind](**params)
    except TypeError as exc:
        raise ValueError(f"not a {kind} unit: {exc}") from None


def tracking_groups(study: Study, chains_per_job: int, every: int, parent_points: int) -> dict[str, list[Unit]]:
    """The tracking jobs, each logging a group of chains in one process: block-mode chains of one target,
    up to ``chains_per_job`` per job, in study order; and one job per (experiment, seed) of an experiment
    run one generation per job (its shared generation 0, then every regime's generations).  name -> units."""
    groups: dict[str, list[Unit]] = {}
    per_target: dict[str, list[Chain]] = {}
    for chain in study.chains:
        e = chain.experiment
        if e.block == 1:
            name = f"{e.label}-seed{chain.seed}"
            if name not in groups:
                groups[name] = [GenerationUnit.of(chain, 0)]
            groups[name] += [GenerationUnit.of(chain, g) for g in range(1, e.generations + 1)]
        else:
            per_target.setdefault(e.target, []).append(chain)
    for target, chains in per_target.items():
        for i in range(0, len(chains), chains_per_job):
            groups[f"{target}-chains{i // chains_per_job}"] = [
                BlockUnit.of(c, a, b, every, parent_points) for c in chains[i:i + chains_per_job] for a, b in blocks(c)]
    return groups


def pruned_generations(chain: Chain) -> list[int]:
    """The generations whose weights the chain's ``keep`` setting removes once every job reading them is done
    (one generation per job only; generation 0 and the last are always kept)."""
    e = chain.experiment
    keep = e.params.get("keep", "all")
    if e.block != 1 or keep == "all":
        return []
    return [g for g in range(1, e.generations + 1) if not kept(keep, g, e.generations)]


def weight_readers(chain: Chain, gen: int) -> dict:
    """Every output made from generation ``gen``'s weights (g >= 1): its samples and metrics, the chain's
    curated data, and generation g + 1's model where it starts from generation g's."""
    here = generation_files(chain, gen)
    out = {"samples": here.samples, "metrics": here.metrics}
    if chain.experiment.curation is not None:
        out["curated"] = curation_files(chain, gen).curated
    if gen < chain.experiment.generations and chain.job.target().starts_from_previous():
        out["next"] = generation_files(chain, gen + 1).model
    return out


def backbone_models(study: Study) -> dict[str, str]:
    """cache key -> ``model:`` setting, of every pretrained model the study fits from."""
    models = {e.make_target().backbone() for e in study.experiments} - {None}
    return {backbones.key(m): m for m in sorted(models)}
