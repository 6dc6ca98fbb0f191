# JMRN pose-action pipeline: manifest -> pose -> potion -> train -> export -> fusion -> report.
# Run `snakemake --cores all all`; another dataset: `--configfile config/<dataset>.yaml`;
# on SLURM `snakemake --profile slurm all`; one split: `snakemake --profile slurm split2`.
import sys

from snakemake.utils import min_version, validate

from jmrn.config import check_config, pose_source, resolve_variant, train_settings
from jmrn.profiles import check_profile

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
check_config(config)
check_profile(sys.argv, workflow.basedir)


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
            expand(f"{FUSION_DIR}/metrics.json", dataset=DATASET, split=_split, fusion=list(FUSIONS), seed=SEEDS),
        localrule: True
