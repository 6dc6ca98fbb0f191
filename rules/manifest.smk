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
    threads: job_threads("local")
    resources:
        **job_resources("local"),
    localrule: True
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT


checkpoint manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=MANIFEST,
        **({"truth": GROUND_TRUTH} if PERSON_BOXES else {}),
    log:
        "results/{dataset}/logs/manifest.log",
    benchmark:
        "results/{dataset}/benchmarks/manifest.tsv"
    params:
        stage="manifest",
        dataset=config["dataset"],
        sources=manifest_sources,
        # The shard tables too (an unchanged one is left alone): all pose jobs start together.
        shard_table=lambda wc: SHARD_TABLE.replace("{dataset}", wc.dataset),
        n_shards=N_SHARDS,
    threads: job_threads("manifest")
    resources:
        **job_resources("manifest"),
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT


rule shard_videos:
    input:
        manifest=ancient(MANIFEST),
    output:
        videos=SHARD_TABLE,
    log:
        "results/{dataset}/logs/shards/{shard}.{digest}.log",
    benchmark:
        "results/{dataset}/benchmarks/shards/{shard}.{digest}.tsv"
    params:
        stage="shard_videos",
        n_shards=N_SHARDS,
    threads: job_threads("local")
    resources:
        **job_resources("local"),
    localrule: True
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT


rule split_videos:
    input:
        manifest=ancient(MANIFEST),
        potion=ancient(POTION),
    output:
        videos="results/{dataset}/split{split}/videos.{digest}.json",
    log:
        "results/{dataset}/logs/splits/split{split}.{digest}.log",
    benchmark:
        "results/{dataset}/benchmarks/splits/split{split}.{digest}.tsv"
    params:
        stage="split_videos",
    threads: job_threads("local")
    resources:
        **job_resources("local"),
    localrule: True
    conda:
        "../envs/pose.yaml"
    script:
        STAGE_SCRIPT
