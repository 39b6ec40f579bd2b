"""Every file the workflow makes, spelled once.

``rules/common.smk`` builds its output patterns from these functions (called
with wildcard names such as ``"{exp}"``), and Python code (jobs, tracking,
tests, benchmarks) finds the same files with real values.  All paths are
relative to the working directory Snakemake runs in.

Layout of a study::

    results/{study}/
      metrics.csv  plots/  logs/  tracking/
      {exp}/reference/                    fixed evaluation material of an experiment
      {exp}/seed{s}/real.npz              real data (shared by every regime)
      {exp}/seed{s}/gen0/                 generation 0, shared by every regime (one generation per job)
      {exp}/{regime}/seed{s}/gen{g}/      generation g >= 1 of a chain (one generation per job)
      {exp}/{regime}/seed{s}/gens{a}-{b}/ a block of generations (block mode)
"""
from __future__ import annotations


def results(study: str) -> str:
    return f"results/{study}"


def logs(study: str) -> str:
    return f"{results(study)}/logs"


def metrics_table(study: str) -> str:
    return f"{results(study)}/metrics.csv"


def settings_table(study: str) -> str:
    """One row per (experiment, regime): its settings (joined to metrics.csv on experiment and regime)."""
    return f"{results(study)}/settings.csv"


def summary_table(study: str) -> str:
    """The last generation of every experiment x regime x metric: mean / min / max over seeds."""
    return f"{results(study)}/summary.csv"


def plot(study: str, metric: str) -> str:
    return f"{results(study)}/plots/{metric}.png"


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
    return f"{experiment_dir(study, exp)}/reference"


def seed_dir(study: str, exp: str, seed) -> str:
    """What every regime of an experiment shares for one seed: the real data and generation 0."""
    return f"{experiment_dir(study, exp)}/seed{seed}"


def real_data(study: str, exp: str, seed) -> str:
    return f"{seed_dir(study, exp, seed)}/real.npz"


def gen0_dir(study: str, exp: str, seed) -> str:
    return f"{seed_dir(study, exp, seed)}/gen0"


def chain_dir(study: str, exp: str, regime: str, seed) -> str:
    return f"{experiment_dir(study, exp)}/{regime}/seed{seed}"


def gen_dir(study: str, exp: str, regime: str, seed, gen) -> str:
    """Generation ``gen`` of a chain run one generation per job; generation 0 is shared by the regimes."""
    if str(gen) == "0":
        return gen0_dir(study, exp, seed)
    return f"{chain_dir(study, exp, regime, seed)}/gen{gen}"


def curated_dir(study: str, exp: str, regime: str, seed, gen) -> str:
    """Generation ``gen``'s synthetic data after the chain's curation step (per chain, also for gen 0)."""
    return f"{chain_dir(study, exp, regime, seed)}/gen{gen}/curated"


def curation_metrics(study: str, exp: str, regime: str, seed, gen) -> str:
    """The curation step's metrics of generation ``gen`` of a chain (kept fraction, scores)."""
    return f"{chain_dir(study, exp, regime, seed)}/gen{gen}/curation.csv"


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


def tracking_study(study: str) -> str:
    return f"{tracking_dir(study)}/study.json"
