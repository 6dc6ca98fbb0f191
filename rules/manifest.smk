rule demo_dataset:
    output:
        videos=directory("results/{dataset}/raw/videos"),
        splits=directory("results/{dataset}/raw/splits"),
    log:
        "results/{dataset}/logs/demo_dataset.log",
    benchmark:
        "results/{dataset}/benchmarks/demo_dataset.tsv"
    params:
        stage="demo_dataset",
        root=lambda wc: f"results/{wc.dataset}/raw",
        demo=config.get("demo", {}),
        splits=SPLITS,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT


rule manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest="results/{dataset}/manifest.csv",
    log:
        "results/{dataset}/logs/manifest.log",
    benchmark:
        "results/{dataset}/benchmarks/manifest.tsv"
    params:
        stage="manifest",
        dataset=config["dataset"],
    threads: 4
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT
