"""Ouroboros: the Python package behind the model-collapse Snakemake workflow.

All logic lives here (targets, regimes, seeding, I/O, metrics, plots); the
Snakemake rules and scripts are thin adapters around it.  Import submodules
explicitly (``from ouroboros.chain import run_block``): inside a Snakefile the
bare name ``workflow`` is Snakemake's own workflow object.
"""

__version__ = "0.1.0"
