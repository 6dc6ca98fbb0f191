rule pose:
    input:
        videos=shard_videos_file,
    output:
        heatmaps=directory("results/{dataset}/heatmaps/{shard}.zarr"),
    log:
        "results/{dataset}/logs/pose/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/pose/{shard}.tsv"
    params:
        stage="pose",
        pose=config["pose"],
        n_shards=N_SHARDS,
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1 if config["pose"]["backend"] == "openpifpaf" else 0,
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT
