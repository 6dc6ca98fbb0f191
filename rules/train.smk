rule train:
    input:
        potion="results/{dataset}/potion.zarr",
        manifest="results/{dataset}/manifest.csv",
    output:
        model="results/{dataset}/split{split}/{variant}/model.pt",
        history="results/{dataset}/split{split}/{variant}/history.csv",
    log:
        "results/{dataset}/logs/train/split{split}_{variant}.log",
    benchmark:
        "results/{dataset}/benchmarks/train/split{split}_{variant}.tsv"
    params:
        stage="train",
        variant=lambda wc: config["variants"][wc.variant],
        train=lambda wc: train_settings(config, wc.variant),
        seed=config["seed"],
    threads: config["train"]["threads"]
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["train"]["gpus"],
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT


rule export:
    input:
        potion="results/{dataset}/potion.zarr",
        manifest="results/{dataset}/manifest.csv",
        model="results/{dataset}/split{split}/{variant}/model.pt",
    output:
        logits="results/{dataset}/split{split}/{variant}/logits.csv",
        metrics="results/{dataset}/split{split}/{variant}/metrics.json",
        joint_weights="results/{dataset}/split{split}/{variant}/joint_weights.csv",
    log:
        "results/{dataset}/logs/export/split{split}_{variant}.log",
    benchmark:
        "results/{dataset}/benchmarks/export/split{split}_{variant}.tsv"
    params:
        stage="export",
        variant=lambda wc: config["variants"][wc.variant],
        device=config["train"]["device"],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT
