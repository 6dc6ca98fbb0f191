"""JMRN: pose and joint-aware action recognition (Shah et al., WACV 2022) as a Snakemake pipeline."""

__version__ = "0.1.0"
