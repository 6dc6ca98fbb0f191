rule train:
    input:
        potion=ancient(POTION),
        videos=split_videos_file,
    output:
        model=f"{RUN_DIR}/model.pt",
        history=f"{RUN_DIR}/history.csv",
    log:
        "results/{dataset}/logs/train/split{split}_{variant}_seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/train/split{split}_{variant}_seed{seed}.tsv"
    params:
        stage="train",
        variant=lambda wc: resolve_variant(config, wc.variant),
        train=lambda wc: train_settings(config, wc.variant),
    threads: job_threads("train")
    resources:
        **job_resources("train", split_maps_mb(with_test=False)),
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT


rule export:
    input:
        potion=ancient(POTION),
        videos=split_videos_file,
        model=f"{RUN_DIR}/model.pt",
    output:
        logits=f"{RUN_DIR}/logits.csv",
        metrics=f"{RUN_DIR}/metrics.json",
        joint_weights=f"{RUN_DIR}/joint_weights.csv",
        confusion=f"{RUN_DIR}/confusion.csv",
        card=f"{RUN_DIR}/model_card.json",
    log:
        "results/{dataset}/logs/export/split{split}_{variant}_seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/export/split{split}_{variant}_seed{seed}.tsv"
    params:
        stage="export",
        variant=lambda wc: resolve_variant(config, wc.variant),
        device=config["train"]["device"],
        val_fraction=config["train"]["val_fraction"],
        precision=config["train"]["precision"],
        ava_max_detections=config["evaluation"]["ava_max_detections_per_keyframe"],
        # What the model card records of the run (what a new video's maps must be made with).
        provenance=lambda wc: {
            "dataset": {"name": DATASET, "adapter": config["dataset"]["adapter"]},
            "pose": pose_settings(config),
            "train": train_settings(config, wc.variant),
        },
    threads: job_threads("export")
    resources:
        **job_resources("export", split_maps_mb(with_test=True)),
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT
