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
        pose=pose_settings(config),
        # Pose files from outside (OpenPose / AlphaPose outputs, a checkpoint) are not Snakemake
        # inputs: their digest reruns the shards when they are rewritten.
        pose_files=lambda wildcards: pose_files(),
        n_shards=N_SHARDS,
    threads: job_threads("pose")
    resources:
        **job_resources("pose"),
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT
