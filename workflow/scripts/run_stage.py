"""Thin bridge from a Snakemake ``script:`` directive to ``jmrn.stages.run``.

The checkout's root comes first on ``sys.path``, so a job runs this workflow's ``jmrn`` in any
environment: the project's virtualenv or a ``--sdm conda`` env that holds only the dependencies.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821

from jmrn.stages import run  # noqa: E402

run(snakemake)  # noqa: F821  (injected by Snakemake)
