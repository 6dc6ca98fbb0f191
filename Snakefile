# JMRN pose-action pipeline: manifest -> pose -> potion -> train -> export -> fusion -> report.
# The demo: `snakemake --cores all all --configfile config/demo.yaml`; a dataset:
# `--configfile config/paper.yaml config/<dataset>.yaml`; on SLURM `snakemake --profile slurm
# all --configfile ...`; one split: `snakemake --profile slurm split2 --configfile ...`.
import os
import sys

from snakemake.utils import min_version

from jmrn.cli import validate_config
from jmrn.config import pose_settings, pose_source, resolve_variant, train_settings
from jmrn.errors import UserError
from jmrn.preflight import missing_inputs, runs_jobs
from jmrn.profiles import check_profile
from jmrn.slurm import install as mend_slurm_plugin

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")  # the defaults, wherever Snakemake runs


report: "workflow/report/workflow.rst"


# A bad config, or inputs that are not there, stop the run before any job: one line each.
try:
    validate_config(config, " + ".join(["config/config.yaml", *map(str, workflow.overwrite_configfiles or [])]))
    check_profile(sys.argv, workflow.basedir)
except UserError as exc:
    sys.exit(f"error: {exc}")
MISSING = missing_inputs(config)
if MISSING and runs_jobs(sys.argv):
    sys.exit("\n".join(f"error: missing {line}" for line in MISSING))
for line in MISSING:  # a dry run or a report: say so, and go on
    print(f"warning: missing {line}", file=sys.stderr)
# Under --profile slurm: see cancelled jobs end (sacct's `CANCELLED by <uid>`), and say in a
# failed job's error what SLURM recorded and how its log ends (jmrn/slurm.py).
mend_slurm_plugin()


include: "rules/common.smk"
include: "rules/manifest.smk"
include: "rules/pose.smk"
include: "rules/potion.smk"
include: "rules/train.smk"
include: "rules/fusion.smk"
include: "rules/report.smk"


rule all:
    input:
        REPORT_OUTPUTS.values(),
        # Named explicitly so that a deleted model or metrics file is rebuilt by `all`.
        run_file("model.pt", split=SPLITS, variant=VARIANTS, seed=SEEDS),
        run_file("metrics.json", split=SPLITS, variant=VARIANTS, seed=SEEDS),
        run_file("model_card.json", split=SPLITS, variant=VARIANTS, seed=SEEDS),
        # The stages' checkpoint outputs: a store deleted by a failed rebuild is rebuilt.
        STAGE_OUTPUTS,
    default_target: True
    localrule: True


# One target per split (`snakemake split2`): its models, exports and fusions. Naming the
# models rebuilds a deleted one, and what reads it after.
for _split in SPLITS:

    rule:
        name:
            f"split{_split}"
        input:
            run_file("model.pt", split=_split, variant=VARIANTS, seed=SEEDS),
            run_file("metrics.json", split=_split, variant=VARIANTS, seed=SEEDS),
            STAGE_OUTPUTS,
            expand(f"{FUSION_DIR}/metrics.json", dataset=DATASET, split=_split, fusion=list(FUSIONS), seed=SEEDS),
        localrule: True


onsuccess:
    import atexit

    from jmrn.report import finished_message

    # After Snakemake's own closing lines: where the tables are and how to make the report.
    atexit.register(print, finished_message(DATASET, [os.path.relpath(f) for f in workflow.overwrite_configfiles or []]),
                    file=sys.stderr, flush=True)
