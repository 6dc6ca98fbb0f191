# JMRN pose-action pipeline: manifest -> pose -> potion -> train -> export -> fusion -> report.
# Run `snakemake --cores all all`; another dataset: `--configfile config/<dataset>.yaml`.
from snakemake.utils import min_version, validate

from jmrn.config import check_config, resolve_variant, train_settings

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
check_config(config)


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
