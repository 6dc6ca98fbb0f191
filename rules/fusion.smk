rule fusion:
    input:
        unpack(fusion_inputs),
    output:
        weights=f"{FUSION_DIR}/weights.json",
        logits=f"{FUSION_DIR}/logits.csv",
        metrics=f"{FUSION_DIR}/metrics.json",
    log:
        "results/{dataset}/logs/fusion/split{split}_{fusion}_seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/fusion/split{split}_{fusion}_seed{seed}.tsv"
    params:
        stage="fusion",
        modalities=lambda wc: FUSIONS[wc.fusion],
        variants=fusion_variants,
        external=lambda wc: {m: EXTERNAL[m] for m in FUSIONS[wc.fusion] if m in EXTERNAL},
        ava_max_detections=config["evaluation"]["ava_max_detections_per_keyframe"],
    threads: job_threads("local")
    resources:
        **job_resources("local"),
    localrule: True
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT
