checkpoint potion:
    input:
        manifest=ancient(MANIFEST),
        shards=expand("results/{{dataset}}/heatmaps/{shard}.zarr", shard=SHARDS),
    output:
        potion=directory(POTION),
        failed="results/{dataset}/failed.csv",
    log:
        "results/{dataset}/logs/potion.log",
    benchmark:
        "results/{dataset}/benchmarks/potion.tsv"
    params:
        stage="potion",
        potion=config["potion"],
    threads: job_threads("potion")
    resources:
        **job_resources("potion"),
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT
