"""Ouroboros: the Python package behind the model-collapse Snakemake workflow.

All logic lives here (targets, regimes, seeding, I/O, metrics, plots); the
Snakemake rules and scripts are thin adapters around it.  Import submodules
explicitly (``from ouroboros.chain import run_block``): inside a Snakefile the
bare name ``workflow`` is Snakemake's own workflow object.
"""

__version__ = "0.1.0"


def load_generation(study, experiment, regime, seed, generation, root="."):
    """Any generation's fitted model from a study's files (see :mod:`ouroboros.results`)."""
    from ouroboros.results import load_generation as load

    return load(study, experiment, regime, seed, generation, root)
