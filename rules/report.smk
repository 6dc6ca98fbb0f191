REPORT_CATEGORY = f"{DATASET} results"
REPORT_OUTPUTS = {
    "summary_md": "results/tables/summary.md",
    "summary_csv": "results/tables/summary.csv",
    "ablation_md": f"results/tables/{DATASET}_ablation.md",
    "ablation_csv": f"results/tables/{DATASET}_ablation.csv",
    "fusion_md": f"results/tables/{DATASET}_fusion.md",
    "fusion_csv": f"results/tables/{DATASET}_fusion.csv",
    "learning_curves": f"results/plots/{DATASET}_learning_curves.png",
    "confusion": f"results/plots/{DATASET}_confusion.png",
    "joint_weights": f"results/plots/{DATASET}_joint_weights.png",
    "per_class_accuracy": f"results/plots/{DATASET}_per_class_accuracy.png",
    "potion_examples": f"results/plots/{DATASET}_potion_examples.png",
}
FIRST_SPLIT = SPLITS[0]
FIRST_SEED = SEEDS[0]
FOCUS = config["report"]["focus_variant"]


rule report:
    input:
        manifest=f"results/{DATASET}/manifest.csv",
        metrics=run_file("metrics.json", split=SPLITS, variant=VARIANTS, seed=SEEDS),
        histories=run_file("history.csv", split=FIRST_SPLIT, variant=VARIANTS, seed=FIRST_SEED),
        fusion=expand(
            f"{FUSION_DIR}/metrics.json",
            dataset=DATASET,
            split=SPLITS,
            fusion=list(FUSIONS),
            seed=SEEDS,
        ),
        first_split_logits=run_file("logits.csv", split=FIRST_SPLIT, variant=VARIANTS, seed=FIRST_SEED),
        potion=f"results/{DATASET}/potion.zarr",
        focus_logits=run_file("logits.csv", split=FIRST_SPLIT, variant=FOCUS, seed=FIRST_SEED)[0],
        joint_weights=run_file("joint_weights.csv", split=FIRST_SPLIT, variant=FOCUS, seed=FIRST_SEED)[0],
    output:
        summary_md=report(REPORT_OUTPUTS["summary_md"], caption="../workflow/report/summary.rst", category=REPORT_CATEGORY),
        summary_csv=REPORT_OUTPUTS["summary_csv"],
        ablation_md=report(REPORT_OUTPUTS["ablation_md"], caption="../workflow/report/ablation.rst", category=REPORT_CATEGORY),
        ablation_csv=REPORT_OUTPUTS["ablation_csv"],
        fusion_md=report(REPORT_OUTPUTS["fusion_md"], caption="../workflow/report/fusion.rst", category=REPORT_CATEGORY),
        fusion_csv=REPORT_OUTPUTS["fusion_csv"],
        learning_curves=report(REPORT_OUTPUTS["learning_curves"], caption="../workflow/report/learning_curves.rst", category=REPORT_CATEGORY),
        confusion=report(REPORT_OUTPUTS["confusion"], caption="../workflow/report/confusion.rst", category=REPORT_CATEGORY),
        joint_weights=report(REPORT_OUTPUTS["joint_weights"], caption="../workflow/report/joint_weights.rst", category=REPORT_CATEGORY),
        per_class_accuracy=report(REPORT_OUTPUTS["per_class_accuracy"], caption="../workflow/report/per_class_accuracy.rst", category=REPORT_CATEGORY),
        potion_examples=report(REPORT_OUTPUTS["potion_examples"], caption="../workflow/report/potion_examples.rst", category=REPORT_CATEGORY),
    log:
        f"results/{DATASET}/logs/report.log",
    benchmark:
        f"results/{DATASET}/benchmarks/report.tsv"
    params:
        stage="report",
        dataset=DATASET,
        metric=config["report"].get("metric", "mean_class_accuracy"),
        adapter=config["dataset"]["adapter"],
        poses=pose_source(config),
        history_labels=VARIANTS,
        variants={v: resolve_variant(config, v) for v in VARIANTS},
    threads: job_threads("local")
    resources:
        **job_resources("local"),
    localrule: True
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT
