"""Which Snakemake profile a run picked up, and a stop when it is another checkout's.

`snakemake --profile slurm` finds the profile by name in the working directory, then in
``~/.config/snakemake``, where ``bash run.sh install`` links the first checkout's copy. A
second checkout would silently run with the first one's settings; this says so instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from jmrn.errors import UserError

MARKER = "jmrn-slurm-profile"  # first line of workflow/profiles/slurm/config.yaml


def requested_profiles(argv: Sequence[str], environ: dict[str, str] | None = None) -> list[str]:
    """The values of ``--profile`` on a command line (or ``$SNAKEMAKE_PROFILE``)."""
    names = []
    for i, arg in enumerate(argv):
        if arg == "--profile" and i + 1 < len(argv):
            names.append(argv[i + 1])
        elif arg.startswith("--profile="):
            names.append(arg.split("=", 1)[1])
    if not names and (environ or os.environ).get("SNAKEMAKE_PROFILE"):
        names.append((environ or os.environ)["SNAKEMAKE_PROFILE"])
    return names


def check_profile(argv: Sequence[str], checkout: str | os.PathLike) -> None:
    """Stop when a ``--profile`` resolves to a jmrn profile outside ``checkout``."""
    from snakemake.cli import get_profile_dir

    ours = (Path(checkout) / "workflow" / "profiles" / "slurm").resolve()
    for name in requested_profiles(argv):
        found = get_profile_dir(name)
        if found is None:
            continue
        directory, config_file = found
        try:
            is_jmrn = MARKER in Path(config_file).read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if is_jmrn and Path(directory).resolve() != ours:
            raise UserError(
                f"--profile {name} is {Path(directory).resolve()}, another checkout's jmrn "
                f"profile, not this one's ({ours}): use --profile {os.path.relpath(ours)} or "
                f"relink it with `bash run.sh link-profile`")
