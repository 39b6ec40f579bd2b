"""Every file the workflow makes, spelled once.

``rules/common.smk`` builds its output patterns from these functions (called
with wildcard names such as ``"{exp}"``), and Python code (jobs, tracking,
tests, benchmarks) finds the same files with real values.  All paths are
relative to the working directory Snakemake runs in.

Layout of a study::

    results/backbones/{key}/              a pretrained model converted once, shared by every study here
    results/{study}/
      metrics.csv  plots/  logs/  tracking/
      {exp}/reference/                    fixed evaluation material of an experiment
      {exp}/curation-reference/           the same, for a curation step that reads it (a judge)
      {exp}/seed{s}/real.npz              real data (shared by every regime)
      {exp}/seed{s}/gen0/                 generation 0, shared by every regime (one generation per job)
      {exp}/{regime}/seed{s}/gen{g}/      generation g >= 1 of a chain (one generation per job)
      {exp}/{regime}/seed{s}/gen{g}/curated/, curation.csv   the chain's curated S_g (also g = 0)
      {exp}/{regime}/seed{s}/gens{a}-{b}/ a block of generations (block mode)

A generation's folder lies in its *node*: ``{regime}/seed{s}`` for generations g >= 1 of a chain,
``seed{s}`` for the generation 0 its regimes share (:func:`node`); the rules match both with one
``{node}`` wildcard, so generation 0 is a generation like any other.  What lies inside a generation's and a
block's folder is spelled once, by :class:`GenerationFiles` and :class:`BlockFiles`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: the ``{node}`` wildcard: a chain's folder under its experiment, or the shared generation 0's
NODE_PATTERN = r"([a-z][a-z0-9.-]*/)?seed\d+"
#: the folders the rules declare as ``directory()`` outputs (a generation's model, samples and curated data,
#: an experiment's reference and curation reference): Snakemake sees such a folder, not the files in it
DIRECTORY_OUTPUTS = ("model", "samples", "curated", "reference", "curation-reference")


@dataclass(frozen=True)
class GenerationFiles:
    """What one generation writes in its folder, run one generation per job (a pattern with wildcards too)."""

    dir: str

    @property
    def model(self) -> str:
        return f"{self.dir}/{DIRECTORY_OUTPUTS[0]}"

    @property
    def samples(self) -> str:
        """What the generation's model drew (generation 0: every regime's, in parts)."""
        return f"{self.dir}/{DIRECTORY_OUTPUTS[1]}"

    @property
    def metrics(self) -> str:
        return f"{self.dir}/metrics.csv"

    @property
    def distributions(self) -> str:
        return f"{self.dir}/distributions.npz"

    @property
    def trainset(self) -> str:
        """The training set's manifest (sizes, digest, which real data and samples it read)."""
        return f"{self.dir}/trainset.json"

    @property
    def pruned(self) -> str:
        """The record of the weights removed from ``model/`` once every job that reads them was done (the ``keep``
        setting of the torch targets); the folder keeps the model's description and training curve."""
        return f"{self.dir}/model.pruned.json"

    @property
    def curated(self) -> str:
        """The chain's curated synthetic data (in the chain's own gen{g} folder, generation 0's too)."""
        return f"{self.dir}/{DIRECTORY_OUTPUTS[2]}"

    @property
    def curation_metrics(self) -> str:
        return f"{self.dir}/curation.csv"


@dataclass(frozen=True)
class BlockFiles:
    """What a block job writes in its folder ``gens{a}-{b}/``."""

    dir: str
    #: the block job's outputs; a block is complete when all are on disk (its evaluation job then writes
    #: ``metrics.csv``, which a changed evaluate setting re-writes without re-running the block)
    OUTPUTS = ("state.npz", "models.npz", "chain.csv")

    @property
    def state(self) -> str:
        """What the next block resumes from (generation 0's and the last model, a pool of statistics)."""
        return f"{self.dir}/state.npz"

    @property
    def models(self) -> str:
        """Every generation's model, stacked (with a ``generation`` array)."""
        return f"{self.dir}/models.npz"

    @property
    def chain_metrics(self) -> str:
        """The block job's own metrics of each generation: the training set's size, the curation step's."""
        return f"{self.dir}/chain.csv"

    @property
    def metrics(self) -> str:
        """Every metric of the block's generations (its evaluation job's: the target's, then ``chain.csv``'s)."""
        return f"{self.dir}/metrics.csv"

    @property
    def target(self) -> str:
        """What the stacked models are (target name and params), so they load without the config."""
        return f"{self.dir}/target.json"


def results(study: str) -> str:
    return f"results/{study}"


#: pretrained backbones converted once per source, shared by every study of the working directory
BACKBONES = "results/backbones"


def parameter_counts() -> str:
    """The torch networks' parameter counts by target and settings, kept between dry runs (a cache: deleting it
    costs one count)."""
    return "results/.cache/parameter-counts.json"


def backbone_dir(key: str) -> str:
    """A converted pretrained model (:mod:`ouroboros.backbones`): ``results/backbones/{key}/``."""
    return f"{BACKBONES}/{key}"


def logs(study: str) -> str:
    return f"{results(study)}/logs"


def metrics_table(study: str) -> str:
    return f"{results(study)}/metrics.csv"


def settings_table(study: str) -> str:
    """One row per (experiment, regime): its settings (joined to metrics.csv on experiment and regime)."""
    return f"{results(study)}/settings.csv"


#: the folder beside a study's tables holding them as the last successful ``collect`` wrote them
LAST_TABLES = "last"


def last_tables(study: str) -> str:
    """Hard links to the study's tables as the last successful ``collect`` wrote them: Snakemake deletes a job's
    outputs before it runs, so a ``collect`` that fails would otherwise leave no table at all."""
    return f"{results(study)}/{LAST_TABLES}"


def claims_table(study: str) -> str:
    """Each checkable claim of the study: what was expected, measured, its interval across seeds, the verdict."""
    return f"{results(study)}/claims.csv"


def summary_table(study: str) -> str:
    """The last generation of every experiment x regime x metric: mean / min / max over seeds."""
    return f"{results(study)}/summary.csv"


def plot_dir(study: str, target: str) -> str:
    """A target's metric plots (one job draws them all): ``{metric}.png`` each."""
    return f"{results(study)}/plots/{target}"


#: a metric plot's name inside its target's folder (the report's pattern)
PLOT_PATTERN = "{metric}.png"


def sweep_plot(study: str, name: str) -> str:
    return f"{results(study)}/plots/sweeps/{name}.png"


def sweep_table(study: str, name: str) -> str:
    """The numbers a sweep plot draws (measured mean, min, max over seeds, theory)."""
    return f"{results(study)}/plots/sweeps/{name}.csv"


def sample_grid(study: str, exp: str, regime: str, seed) -> str:
    return f"{results(study)}/plots/samples/{exp}/{regime}/seed{seed}.png"


def distribution_plot(study: str, exp: str, name: str) -> str:
    return f"{results(study)}/plots/distributions/{exp}/{name}.png"


def experiment_dir(study: str, exp: str) -> str:
    return f"{results(study)}/{exp}"


def reference_dir(study: str, exp: str) -> str:
    """An experiment's fixed evaluation material (what its evaluate jobs read)."""
    return f"{experiment_dir(study, exp)}/{DIRECTORY_OUTPUTS[3]}"


def curation_reference_dir(study: str, exp: str) -> str:
    """The same material made by its own job for a curation step that reads it (a judge), so that a changed
    evaluate setting re-makes the evaluation reference without re-running curation."""
    return f"{experiment_dir(study, exp)}/{DIRECTORY_OUTPUTS[4]}"


def seed_dir(study: str, exp: str, seed) -> str:
    """What every regime of an experiment shares for one seed: the real data and generation 0."""
    return f"{experiment_dir(study, exp)}/seed{seed}"


def real_data(study: str, exp: str, seed) -> str:
    return f"{seed_dir(study, exp, seed)}/real.npz"


def gen0_dir(study: str, exp: str, seed) -> str:
    return node_gen_dir(study, exp, node(None, seed), 0)


def node(regime: Optional[str], seed) -> str:
    """A generation's node: ``{regime}/seed{s}``, or ``seed{s}`` for generation 0 (regime None)."""
    return f"seed{seed}" if regime is None else f"{regime}/seed{seed}"


def parse_node(value: str) -> tuple[Optional[str], int]:
    """(regime or None, seed) of a node."""
    regime, _, seed = value.rpartition("/")
    return (regime or None), int(seed[len("seed"):])


def node_gen_dir(study: str, exp: str, node_: str, gen) -> str:
    """Generation ``gen``'s folder in a node (a pattern with ``"{node}"``, ``"{gen}"``)."""
    return f"{experiment_dir(study, exp)}/{node_}/gen{gen}"


def node_log_dir(study: str, exp: str, node_: str, gen) -> str:
    return f"{logs(study)}/{exp}/{node_}/gen{gen}"


def generation(study: str, exp: str, regime: str, seed, gen) -> GenerationFiles:
    """The files of generation ``gen`` of a chain (generation 0: the shared one)."""
    return GenerationFiles(gen_dir(study, exp, regime, seed, gen))


def curation(study: str, exp: str, regime: str, seed, gen) -> GenerationFiles:
    """The chain's own generation folder, where its curated data and curation metrics lie (also for g = 0)."""
    return GenerationFiles(f"{chain_dir(study, exp, regime, seed)}/gen{gen}")


def block(study: str, exp: str, regime: str, seed, first, last) -> BlockFiles:
    return BlockFiles(block_dir(study, exp, regime, seed, first, last))


def chain_dir(study: str, exp: str, regime: str, seed) -> str:
    return f"{experiment_dir(study, exp)}/{regime}/seed{seed}"


def gen_dir(study: str, exp: str, regime: str, seed, gen) -> str:
    """Generation ``gen`` of a chain run one generation per job; generation 0 is shared by the regimes."""
    return node_gen_dir(study, exp, node(None if str(gen) == "0" else regime, seed), gen)


def curated_dir(study: str, exp: str, regime: str, seed, gen) -> str:
    """Generation ``gen``'s synthetic data after the chain's curation step (per chain, also for gen 0)."""
    return curation(study, exp, regime, seed, gen).curated


def curation_metrics(study: str, exp: str, regime: str, seed, gen) -> str:
    """The curation step's metrics of generation ``gen`` of a chain (kept fraction, scores)."""
    return curation(study, exp, regime, seed, gen).curation_metrics


def block_dir(study: str, exp: str, regime: str, seed, first, last) -> str:
    return f"{chain_dir(study, exp, regime, seed)}/gens{first}-{last}"


def chain_log_dir(study: str, exp: str, regime: str, seed) -> str:
    return f"{logs(study)}/{exp}/{regime}/seed{seed}"


def seed_log_dir(study: str, exp: str, seed) -> str:
    return f"{logs(study)}/{exp}/seed{seed}"


def tracking_dir(study: str) -> str:
    return f"{results(study)}/tracking"


def tracking_group(study: str, group: str) -> str:
    """The receipt of one tracking job (a group of chains)."""
    return f"{tracking_dir(study)}/{group}.json"


def tracking_outage(study: str) -> str:
    """What the first tracking job that could not reach the backend in this run said (the others then stop at
    once instead of waiting for it again); the run's main process removes it as it starts."""
    return f"{tracking_dir(study)}/outage.txt"


def tracking_study(study: str) -> str:
    return f"{tracking_dir(study)}/study.json"
