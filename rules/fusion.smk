rule fusion:
    input:
        unpack(fusion_inputs),
    output:
        weights="results/{dataset}/split{split}/fusion/{fusion}/weights.json",
        logits="results/{dataset}/split{split}/fusion/{fusion}/logits.csv",
        metrics="results/{dataset}/split{split}/fusion/{fusion}/metrics.json",
    log:
        "results/{dataset}/logs/fusion/split{split}_{fusion}.log",
    benchmark:
        "results/{dataset}/benchmarks/fusion/split{split}_{fusion}.tsv"
    params:
        stage="fusion",
        modalities=lambda wc: FUSIONS[wc.fusion],
        variants=fusion_variants,
        external=lambda wc: {m: EXTERNAL[m] for m in FUSIONS[wc.fusion] if m in EXTERNAL},
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/torch.yaml"
    script:
        STAGE_SCRIPT
