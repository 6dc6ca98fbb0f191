# The report rule: tables (CSV + Markdown, and HTML pages for `snakemake --report`) and plots.
# Report categories follow the pipeline's stages; the subcategory is the dataset.
REPORT_OUTPUTS = {
    f"{kind}_{ext}": f"results/tables/{DATASET}_{kind}.{ext}"
    for kind in ("summary", "ablation", "fusion", "per_class") for ext in ("md", "csv", "html")
} | {
    plot: f"results/plots/{DATASET}_{plot}.png"
    for plot in ("learning_curves", "confusion", "joint_weights", "per_class_accuracy", "potion_examples")
}
# output name -> (category, caption); the others are plain outputs.
REPORTED = {
    "potion_examples": ("1. Poses and PoTion maps", "potion_examples"),
    "learning_curves": ("2. Training", "learning_curves"),
    "joint_weights": ("2. Training", "joint_weights"),
    "summary_html": ("3. Results", "summary"),
    "ablation_html": ("3. Results", "ablation"),
    "per_class_html": ("3. Results", "per_class"),
    "per_class_accuracy": ("3. Results", "per_class_accuracy"),
    "confusion": ("3. Results", "confusion"),
    "fusion_html": ("4. Late fusion", "fusion"),
}
FIRST_SPLIT = SPLITS[0]
FIRST_SEED = SEEDS[0]
FOCUS = config["report"]["focus_variant"]


def report_output(name):
    """A report rule output, registered in the HTML report when it is one of REPORTED."""
    if name not in REPORTED:
        return REPORT_OUTPUTS[name]
    category, caption = REPORTED[name]
    return report(REPORT_OUTPUTS[name], caption=f"../workflow/report/{caption}.rst",
                  category=category, subcategory=DATASET)


rule report:
    input:
        manifest=f"results/{DATASET}/manifest.csv",
        metrics=run_file("metrics.json", split=SPLITS, variant=VARIANTS, seed=SEEDS),
        histories=run_file("history.csv", split=SPLITS, variant=VARIANTS, seed=FIRST_SEED),
        confusions=run_file("confusion.csv", split=SPLITS, variant=FOCUS, seed=SEEDS),
        fusion=expand(
            f"{FUSION_DIR}/metrics.json",
            dataset=DATASET,
            split=SPLITS,
            fusion=list(FUSIONS),
            seed=SEEDS,
        ),
        potion=f"results/{DATASET}/potion.zarr",
        joint_weights=run_file("joint_weights.csv", split=FIRST_SPLIT, variant=FOCUS, seed=FIRST_SEED)[0],
    output:
        **{name: report_output(name) for name in REPORT_OUTPUTS},
    log:
        f"results/{DATASET}/logs/report.log",
    benchmark:
        f"results/{DATASET}/benchmarks/report.tsv"
    params:
        stage="report",
        dataset=DATASET,
        metric=config["report"].get("metric", "mean_class_accuracy"),
        history_labels=[v for s in SPLITS for v in VARIANTS],
        history_splits=[s for s in SPLITS for v in VARIANTS],
        variants={v: resolve_variant(config, v) for v in VARIANTS},
        adapter=config["dataset"]["adapter"],
        poses=pose_source(config),
        focus=FOCUS,
    threads: job_threads("local")
    resources:
        **job_resources("local"),
    localrule: True
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT
