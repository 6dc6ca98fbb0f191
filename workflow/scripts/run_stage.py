"""Thin bridge from a Snakemake ``script:`` directive to ``jmrn.stages.run``."""
from jmrn.stages import run

run(snakemake)  # noqa: F821  (injected by Snakemake)
