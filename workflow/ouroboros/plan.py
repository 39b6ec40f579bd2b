"""The study's jobs: what the rules schedule and what each job reads.

:class:`Plan` is built once from the validated study; ``rules/common.smk`` is glue that turns wildcards into
calls of it.  What travels to a job as a rule param is typed and comes back exactly: a chain's
:class:`~ouroboros.config.ChainSpec` (``to_params`` / ``from_params``) and the tracking units
(:mod:`ouroboros.units`: ``BlockUnit`` / ``GenerationUnit``, ``to_params`` / ``unit_from_params``, re-exported
here).  Paths come from :mod:`ouroboros.paths`; the metrics' descriptions and units from
:mod:`ouroboros.catalogue`.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from ouroboros import backbones, claims, paths
from ouroboros.config import Chain, ChainSpec, Study
from ouroboros.preflight import prepare
from ouroboros.settings import STAGES, stage_of
from ouroboros.targets import target_class
from ouroboros.sweeps import experiment_records
from ouroboros.trackconf import UI_VIEW
from ouroboros.units import (  # noqa: F401 (the units of work, re-exported for the rules and scripts)
    BlockUnit,
    GenerationUnit,
    Unit,
    backbone_models,
    block_files,
    blocks,
    curation_files,
    generation_files,
    job_benchmarks,
    pruned_generations,
    real_path,
    tracking_groups,
    unit_from_params,
    weight_readers,
)


class Plan:
    """Everything the rules ask of the study: chains by wildcards, each job's inputs, the tables, plots and
    tracking jobs it makes.  ``tracking``: the study's tracking settings (``enabled``, ``uri``, ``every``,
    ``chains_per_job``, ``parent_points``); ``sweep_plots``: name -> sweep plot spec."""

    def __init__(self, study: Study, tracking: dict, sweep_plots: Optional[dict] = None):
        self.study = study
        self.name = study.name
        self.tracking = tracking
        self.sweep_plots = dict(sweep_plots or {})

    @classmethod
    def for_job(cls, snakemake) -> "Plan":
        """The study's plan rebuilt inside a job from the config Snakemake hands it (checked and filled when the
        workflow was read), so that rules pass a digest of a job's share of the plan (:meth:`digest`), not the
        share itself: a changed study reruns the job without printing its whole unit list."""
        basedir = Path(snakemake.scriptdir).parent
        prepared = prepare(copy.deepcopy(dict(snakemake.config)), basedir, reread=False, checked=True)
        return cls(prepared.study, prepared.tracking, prepared.sweep_plots)

    @staticmethod
    def digest(value) -> str:
        """A short digest of a JSON-able share of the plan (a rule's param: it changes when the share does)."""
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def collect_args(self) -> tuple[list[dict], list[list[str]], list[int]]:
        """What the collect job gathers: every chain's columns, metrics files and generations."""
        chains = self.study.chains
        return ([c.columns() for c in chains], [self.metric_files(c) for c in chains],
                [c.experiment.generations for c in chains])

    def group_units(self, group: str) -> list[dict]:
        """A tracking job's units, as params."""
        return [u.to_params() for u in self.tracking_groups[group]]

    def group_digest(self, group: str) -> str:
        """What a tracking job's rerun depends on: its units with each spec as the settings results depend on (a
        changed thread count re-logs nothing)."""
        units = []
        for u in self.group_units(group):
            units.append(dict(u, spec=ChainSpec.from_params(u["spec"]).by_stage()))
        return self.digest(units)

    # -- chains and generations -------------------------------------------------------------------------
    def chain(self, exp: str, regime: str, seed) -> Chain:
        return self.study.chain(exp, regime, int(seed))

    def first_chain(self, exp: str, seed=None) -> Chain:
        """The experiment's first chain of the seed (what generation 0 and the real data are made from)."""
        chains = [c for c in self.study.chains if c.experiment.label == exp]
        seed = chains[0].seed if seed is None else int(seed)
        return next(c for c in chains if c.seed == seed)

    def generation(self, exp: str, node: str, gen) -> tuple[Chain, int]:
        """(chain, generation) of a generation folder: generation g >= 1 of the node's chain, or the shared
        generation 0 of the seed (made from the experiment's first chain of the seed)."""
        regime, seed = paths.parse_node(node)
        gen = int(gen)
        if (regime is None) != (gen == 0):
            raise ValueError(f"no generation {gen} in {exp}/{node}: generation 0 lies in the shared seed{{s}} "
                             "folder, later ones in {regime}/seed{s}")
        if gen == 0:
            return self.first_chain(exp, seed), 0
        return self.chain(exp, regime, seed), gen

    @staticmethod
    def spec(chain: Chain, gen: int) -> dict:
        """A generation's jobs' ``spec`` param (generation 0's: the shared one)."""
        return chain.gen0_spec() if gen == 0 else chain.spec()

    # -- what a job's rerun depends on: the settings of its stage and the stages before it -------------------
    # A job gets its whole spec as a param derived from its input (Snakemake does not rerun a job when such a
    # param changes), and, as plain params, the parts of the spec its stage depends on, one param per stage
    # (ChainSpec.by_stage): a changed setting re-runs the jobs of its stage and what reads their outputs.
    @staticmethod
    def settings(chain: Chain, gen: int, stage: str) -> dict:
        """One stage's part of generation ``gen``'s spec (generation 0's: the shared one)."""
        return (chain.job.gen0() if gen == 0 else chain.job).by_stage()[stage]

    def real_settings(self, exp: str, seed=None) -> dict:
        """What an experiment's real data of a seed depend on: the ``data`` part of its chains' specs."""
        return self.settings(self.first_chain(exp, seed), 0, "data")

    def reference_settings(self, exp: str, upto: str = "evaluate") -> dict:
        """What an experiment's reference material depends on: its streams, the target's data settings and the
        later ones its ``reference`` reads (:attr:`Target.reference_settings`, of the stages up to ``upto``); not
        the seed, n or replicates."""
        e = self.study.experiment(exp)
        parts = self.first_chain(exp).job.gen0().by_stage()
        out = {k: parts["data"][k] for k in ("experiment", "stream", "study", "target")}
        cls = target_class(e.target)
        later = {k: e.params[k] for k in cls.reference_settings
                 if k in e.params and STAGES.index(stage_of(cls.params_schema, k)) <= STAGES.index(upto)}
        out["params"] = {"data": parts["data"]["params"], "read": later}
        return out

    def reference_path(self, chain: Chain) -> str:
        return paths.reference_dir(self.name, chain.experiment.label)

    def reference_inputs(self, exp: str) -> dict:
        """What an experiment's reference jobs read: its converted pretrained model, where it has one."""
        chain = self.first_chain(exp)
        return {"backbone": self.backbone_path(chain)} if chain.job.target().backbone() else {}

    @staticmethod
    def backbone_path(chain: Chain) -> str:
        """The backbone cache entry of the chain's pretrained model (:mod:`ouroboros.backbones`)."""
        return backbones.entry(chain.job.target().backbone())

    @functools.cached_property
    def backbones(self) -> dict[str, str]:
        """cache key -> ``model:`` setting, of every pretrained model the study fits from."""
        return backbone_models(self.study)

    def chain_settings(self, chain: Chain, stage: str) -> dict:
        """One stage's part of the chain's own spec (its curate and block jobs')."""
        return chain.job.by_stage()[stage]

    def curation_reference_settings(self, exp: str) -> dict:
        """What the curation reference depends on as curation reads it: :meth:`reference_settings` up to the sample
        stage (an evaluate setting it holds material for, such as a GMM's eval_size, is no curation's)."""
        return self.reference_settings(exp, "sample")

    def real_spec(self, exp: str, seed=None) -> dict:
        return self.first_chain(exp, seed).real_spec()

    def reference_spec(self, exp: str) -> dict:
        spec = self.real_spec(exp)
        return {k: spec[k] for k in ("study", "experiment", "stream", "target", "params")}

    # -- what each job reads ----------------------------------------------------------------------------
    @staticmethod
    def synthetic_dir(chain: Chain, j: int) -> str:
        """Where generation j's synthetic data for this chain lie: its curated folder, or the drawn samples."""
        if chain.experiment.curation is not None:
            return curation_files(chain, j).curated
        return generation_files(chain, j).samples

    def train_inputs(self, chain: Chain, gen: int) -> dict:
        inputs = {"real": real_path(chain), "samples": [self.synthetic_dir(chain, j) for j in chain.job.reads(gen)]}
        target = chain.job.target()
        if target.backbone():
            inputs["backbone"] = self.backbone_path(chain)
        if gen > 0 and target.starts_from_previous():
            inputs["previous"] = generation_files(chain, gen - 1).model
        return inputs

    def evaluate_inputs(self, chain: Chain, gen: int) -> dict:
        here = generation_files(chain, gen)
        return {"model": here.model, "samples": here.samples, "trainset": here.trainset, "real": real_path(chain),
                "reference": self.reference_path(chain), "gen0": generation_files(chain, 0).model}

    def curation_reference_path(self, chain: Chain) -> Optional[str]:
        """The experiment's curation reference, where the chain's curation step reads one, else None."""
        cur = chain.job.curation()
        return paths.curation_reference_dir(self.name, chain.experiment.label) if cur and cur.reads_reference else None

    def curate_inputs(self, chain: Chain, gen: int) -> dict:
        here = generation_files(chain, gen)
        inputs = {"samples": here.samples, "model": here.model, "gen0": generation_files(chain, 0).model}
        ref = self.curation_reference_path(chain)
        return dict(inputs, reference=ref) if ref else inputs

    def block_inputs(self, chain: Chain, first: int) -> dict:
        """The real data (and the curation reference, where the curation step reads one); after the first block,
        the previous block's state and the models.npz of the blocks holding the models the resume re-draws from."""
        inputs = {"real": real_path(chain)}
        ref = self.curation_reference_path(chain)
        if ref:
            inputs["reference"] = ref
        if first == 0:
            return inputs
        before = [b for b in blocks(chain) if b[1] < first]
        if not before or before[-1][1] != first - 1:
            raise ValueError(f"no block of {chain.job.path} ends at generation {first - 1}")
        inputs["state"] = block_files(chain, *before[-1]).state
        wanted = chain.job.resume_models(first - 1)
        if wanted:
            inputs["models"] = [block_files(chain, a, b).models for a, b in before if any(a <= j <= b for j in wanted)]
        return inputs

    def block_evaluate_inputs(self, chain: Chain, first: int, last: int) -> dict:
        """What scoring a block reads: its models, state (generation 0's model) and own metrics, the real data and
        the evaluation reference."""
        block = block_files(chain, first, last)
        return {"models": block.models, "state": block.state, "chain": block.chain_metrics, "real": real_path(chain),
                "reference": self.reference_path(chain)}

    @staticmethod
    def metric_files(chain: Chain) -> list[str]:
        """A chain's metrics files: one per generation (and its curation metrics), or one per block."""
        e = chain.experiment
        if e.block == 1:
            files = [generation_files(chain, g).metrics for g in range(e.generations + 1)]
            if e.curation is not None:
                files += [curation_files(chain, g).curation_metrics for g in range(e.generations + 1)]
            return files
        return [block_files(chain, a, b).metrics for a, b in blocks(chain)]

    # -- plots and the report (the metric catalogue: ouroboros.catalogue) ----------------------------------------------------------------------
    def targets(self) -> list[str]:
        """The study's targets, in study order: one plot job, one report category each."""
        return list(dict.fromkeys(e.target for e in self.study.experiments))

    def plot_experiments(self, target: Optional[str] = None) -> list[dict]:
        return experiment_records(self.study, target)

    def plot_dirs(self) -> list[str]:
        return [paths.plot_dir(self.name, t) for t in self.targets()]

    def sweep_plot_files(self) -> list[str]:
        return [f for name in self.sweep_plots for f in (paths.sweep_plot(self.name, name),
                                                         paths.sweep_table(self.name, name))]

    @staticmethod
    def grid_generations(chain: Chain, rows: int = 8) -> list[int]:
        """Up to ``rows`` generations, evenly spaced from 0 to G."""
        g = chain.experiment.generations
        return sorted({round(i * g / (rows - 1)) for i in range(rows)}) if g >= rows else list(range(g + 1))

    def sample_grid_inputs(self, chain: Chain) -> list[str]:
        return [generation_files(chain, g).samples for g in self.grid_generations(chain)]

    def sample_grid_files(self) -> list[str]:
        return [paths.sample_grid(self.name, c.experiment.label, c.regime.label, c.seed) for c in self.study.chains
                if c.experiment.block == 1 and c.job.target().image_shape]

    def _distribution_experiments(self):
        """Experiments whose target keeps per-item distributions (one generation per job only)."""
        return [(e, target_class(e.target).distributions) for e in self.study.experiments
                if e.block == 1 and target_class(e.target).distributions]

    def distribution_files(self) -> list[str]:
        return [paths.distribution_plot(self.name, e.label, name)
                for e, names in self._distribution_experiments() for name in names]

    def distribution_groups(self, exp: str) -> list[dict]:
        """One {regime, generation, files} per regime and generation of the experiment; files over seeds."""
        e = self.study.experiment(exp)
        chains = [c for c in self.study.chains if c.experiment.label == exp]
        return [{"regime": r.label, "generation": g,
                 "files": [generation_files(c, g).distributions for c in chains if c.regime == r]}
                for r in e.regimes for g in range(e.generations + 1)]

    def distribution_inputs(self, exp: str) -> list[str]:
        return sorted({f for group in self.distribution_groups(exp) for f in group["files"]})

    def distribution_description(self, exp: str, name: str) -> str:
        return target_class(self.study.experiment(exp).target).distributions.get(name, "")

    # -- tracking and the end ---------------------------------------------------------------------------------
    @functools.cached_property
    def tracking_groups(self) -> dict[str, list[Unit]]:
        t = self.tracking
        if not t["enabled"]:
            return {}
        return tracking_groups(self.study, t["chains_per_job"], t["every"], t["parent_points"])

    # -- weights a chain does not keep (the torch targets' ``keep``) -------------------------------------
    def prune_files(self) -> list[str]:
        return [generation_files(c, g).pruned for c in self.study.chains for g in pruned_generations(c)]

    def prune_inputs(self, chain: Chain, gen: int) -> dict:
        return {"model": generation_files(chain, gen).model, **weight_readers(chain, gen)}

    def final_outputs(self) -> list[str]:
        outputs = ([paths.metrics_table(self.name)] + self.plot_dirs() + self.sweep_plot_files()
                   + self.sample_grid_files() + self.distribution_files() + self.prune_files())
        if self.claims:
            outputs.append(paths.claims_table(self.name))
        if self.tracking["enabled"]:
            outputs.append(paths.tracking_study(self.name))
        return outputs

    @property
    def claims(self) -> list:
        """The study's checkable claims (:mod:`ouroboros.claims`), as its ``claims`` job reads them."""
        raw = self.study.config.get("claims")
        return raw if isinstance(raw, list) else []

    def claim_context(self) -> dict:
        """What the claims job reads beside the metrics: the sweep plots its slope checks fit, by name, and the
        experiments, where a check needs them (a slope, or a closed form); else nothing."""
        names = {c["check"].get("sweep") for c in self.claims if c["check"]["kind"] == "slope"}
        experiments = self.plot_experiments() if claims.needs_experiments(self.claims) else []
        return {"sweeps": {name: spec for name, spec in self.sweep_plots.items() if name in names},
                "experiments": experiments}

    def closing_line(self, configfiles: Sequence[str] = (), done: bool = True, snakefile=None) -> str:
        """Where the results are, printed when the workflow ends well (``done``) or had nothing to do; the
        commands as this interpreter's environment spells them (``.venv/bin/snakemake``).  A run in another folder
        than its Snakefile's (``--directory DIR``, or ``-s`` from elsewhere) gets absolute paths and a report
        command naming the Snakefile and the folder, which work pasted anywhere."""
        here = Path.cwd()
        away = snakefile is not None and Path(snakefile).resolve().parent != here.resolve()
        if away:
            where = f" -s {Path(snakefile).resolve()} --directory {here}"
            configs = "".join(f" --configfile {Path(f).resolve()}" for f in configfiles)
            results = str(here / paths.results(self.name))
        else:
            where = ""
            configs = "".join(f" --configfile {os.path.relpath(f)}" for f in configfiles)
            results = paths.results(self.name)
        state = "is done" if done else "is up to date (nothing to do)"
        lines = [f"Study {self.name} {state}: table {results}/metrics.csv, plots {results}/plots/",
                 f"  report: {command('snakemake', away)}{where} --report {results}/report.html{configs}"]
        verdicts = claims.verdicts(paths.claims_table(self.name)) if self.claims else None
        if verdicts:
            lines.insert(1, f"  claims: {verdicts} ({results}/claims.csv)")
        if self.tracking["enabled"]:
            uri, study = self.tracking["uri"], self.study_page()
            if uri.startswith(("http://", "https://")):
                lines.append(f"  MLflow: open {ui_url(uri, study)}")
            else:
                lines.append(f"  MLflow: {command('mlflow', away)} ui --app-name ouroboros --backend-store-uri {uri} "
                             f"--port 5000, then open {ui_url('http://127.0.0.1:5000', study)}")
        return "\n".join(lines)

    def study_page(self) -> Optional[str]:
        """The study's MLflow experiment id, as its tracking job recorded it (None before that job ran)."""
        receipt = Path(paths.tracking_study(self.name))
        try:
            return str(json.loads(receipt.read_text())["experiment_id"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


def command(name: str, absolute: bool = False) -> str:
    """``name`` as the running interpreter's environment holds it (``.venv/bin/mlflow`` run from the checkout;
    an absolute path where that is shorter, or ``absolute``: a command printed for a folder other than this
    one), or the bare name where it is not there."""
    exe = Path(sys.executable).parent / name
    if not exe.is_file():
        return name
    rel = os.path.relpath(exe)
    return rel if len(rel) <= len(str(exe)) and not absolute else str(exe)


def ui_url(server: str, experiment_id: Optional[str] = None) -> str:
    """The study's runs page in the MLflow UI's model-training view (the list of experiments where the id is not
    known).  MLflow 3.17's UI takes the view from the browser's remembered choice, else from the address's
    ``workflowType``, else GenAI: ``mlflow ui --app-name ouroboros`` (:mod:`ouroboros.mlflow_ui`) records the
    model-training view as the browser's choice, so that a click on the study stays in it too."""
    page = f"experiments/{experiment_id}/runs" if experiment_id else "experiments"
    return f"{server.rstrip('/')}/#/{page}?{UI_VIEW}"
