# Shared names and input functions. No pipeline logic lives here: only paths from the config
# and the content digests (jmrn.dag) that name what each job depends on.
import functools
import re

from snakemake.exceptions import IncompleteCheckpointException
from snakemake.io import checkpoint_target

from jmrn import resources as job_resources_of
from jmrn.dag import pose_files_digest, shard_digests, source_digest, split_digests, split_maps_mb as _split_maps_mb

DATASET = config["dataset"]["name"]
SPLITS = [int(s) for s in config["dataset"]["splits"]]
SEEDS = [int(s) for s in config["seeds"]]
VARIANTS = list(config["run_variants"])
N_SHARDS = int(config["pose"]["shards"])
SHARDS = [f"shard{i:03d}" for i in range(N_SHARDS)]
FUSIONS = dict(config.get("fusion", {}))
STAGE_SCRIPT = "../workflow/scripts/run_stage.py"


wildcard_constraints:
    dataset=re.escape(DATASET),
    shard=r"shard\d{3,4}",
    split=r"\d+",
    seed=r"\d+",
    variant="|".join(re.escape(v) for v in config["variants"]),
    fusion="|".join(re.escape(f) for f in FUSIONS) or "(?!)",
    digest=r"[0-9a-f]{16}",


# Every per-run output path, spelled once (rules use them with wildcards, `all` and the report
# expand them).
RUN_DIR = "results/{dataset}/split{split}/{variant}/seed{seed}"
FUSION_DIR = "results/{dataset}/split{split}/fusion/{fusion}/seed{seed}"


def run_file(name, **wildcards):
    """A run's file, e.g. run_file("metrics.json", split=1, variant="jmrn", seed=0)."""
    return expand(f"{RUN_DIR}/{name}", dataset=DATASET, **wildcards)


MANIFEST = "results/{dataset}/manifest.csv"
# Datasets of person boxes at keyframes (AVA) also write their ground-truth boxes (frame-mAP);
# the file name is jmrn.tables.ground_truth_path's.
PERSON_BOXES = config["dataset"]["adapter"] == "ava"
GROUND_TRUTH = "results/{dataset}/ground_truth.csv"
SHARD_TABLE = "results/{dataset}/shards/{shard}.{digest}.csv"
POTION = "results/{dataset}/potion.zarr"
# Targets of `all` and `splitN` besides the runs: Snakemake plans a missing intermediate file
# only when a job that reads it must run, and the manifest and PoTion store are read as
# `ancient`. Naming them rebuilds what a failed or killed job deleted (its content digests then
# decide which trainings rerun) instead of keeping results of the settings before it.
STAGE_OUTPUTS = [
    *expand(MANIFEST, dataset=DATASET),
    *expand("results/{dataset}/heatmaps/{shard}.zarr", dataset=DATASET, shard=SHARDS),
    *expand(POTION, dataset=DATASET),
]


def manifest_sources(wildcards):
    """Digest of the dataset's files on disk: a new, removed or replaced video reruns the
    manifest (the demo's files are the demo_dataset rule's output and are tracked as inputs)."""
    if config["dataset"]["adapter"] == "demo":
        return "demo"
    return source_digest(config["dataset"])


@functools.cache
def pose_files():
    """Digest of the pose backend's own files (jmrn.dag.pose_files_digest), once per DAG."""
    return pose_files_digest(config["pose"])


def shard_videos_file(wildcards):
    """The pose shard's video table, named by its content: unchanged rows, unchanged name."""
    manifest = checkpoints.manifest.get(dataset=wildcards.dataset).output.manifest
    digest = shard_digests(manifest, N_SHARDS)[int(wildcards.shard[len("shard"):])]
    return SHARD_TABLE.format(dataset=wildcards.dataset, shard=wildcards.shard, digest=digest)


def split_videos_file(wildcards):
    """The split's table (membership, labels, groups, PoTion checksums), named by its content."""
    manifest = checkpoints.manifest.get(dataset=wildcards.dataset).output.manifest
    potion = checkpoints.potion.get(dataset=wildcards.dataset).output.potion
    digests = split_digests(manifest, potion)
    split = int(wildcards.split)
    if split not in digests:  # the manifest is being rebuilt with this new split
        raise IncompleteCheckpointException(checkpoints.manifest.rule, checkpoint_target(manifest))
    return f"results/{wildcards.dataset}/split{split}/videos.{digests[split]}.json"


def job_threads(kind):
    return job_resources_of.threads(config, kind)


def job_resources(kind, data_mb=None):
    """A rule's resources (jmrn.resources, from the config): memory and time scale with the
    attempt, and with the data the job holds where `data_mb(wildcards)` says how much."""

    def mem_mb(wildcards, attempt):
        try:
            extra = data_mb(wildcards) if data_mb else 0
        except IncompleteCheckpointException:
            # Planned before the manifest / PoTion store exist (a dry run): the job is sized
            # when it is created for real. (Snakemake 9.27 turns this exception, raised from a
            # resource function, into a plain 0 that its dry-run printer cannot handle.)
            extra = 0
        return job_resources_of.memory_mb(config, kind, attempt, extra)

    def runtime(wildcards, attempt):
        return job_resources_of.runtime_min(config, kind, attempt)

    return {"mem_mb": mem_mb, "runtime": runtime, **job_resources_of.fixed_resources(config, kind)}


def split_maps_mb(with_test):
    """Megabytes of the split's PoTion maps (float32) that its training (with_test=False) or
    export (with_test=True) reads."""

    def maps_mb(wildcards):
        manifest = checkpoints.manifest.get(dataset=wildcards.dataset).output.manifest
        potion = checkpoints.potion.get(dataset=wildcards.dataset).output.potion
        return _split_maps_mb(manifest, potion, int(wildcards.split), with_test)

    return maps_mb


def manifest_inputs(wildcards):
    """The demo's generated folders; real datasets live outside the DAG."""
    if config["dataset"]["adapter"] == "demo":
        return {
            "videos": f"results/{DATASET}/raw/videos",
            "splits": f"results/{DATASET}/raw/splits",
        }
    return {}


EXTERNAL = dict(config.get("external_logits", {}))


def fusion_variants(wildcards):
    return [m for m in FUSIONS[wildcards.fusion] if m not in EXTERNAL]


def fusion_inputs(wildcards):
    """Our variants' logits and the external streams' files (so edits to them rerun fusion).

    Asking for the manifest checkpoint defers this job's needs until a manifest that is being
    rebuilt exists, like its exports': otherwise Snakemake would keep a fusion whose inputs
    turn out unchanged scheduled from its first, pessimistic pass."""
    checkpoints.manifest.get(dataset=wildcards.dataset)
    files = {
        "variant_logits": run_file(
            "logits.csv",
            split=wildcards.split,
            variant=fusion_variants(wildcards),
            seed=wildcards.seed,
        ),
        "external": [],
    }
    if PERSON_BOXES:  # frame-mAP needs the boxes and the ground truth
        files["videos"] = split_videos_file(wildcards)
    for name in FUSIONS[wildcards.fusion]:
        if name in EXTERNAL:
            files["external"] += [
                v.format(split=wildcards.split)
                for k, v in EXTERNAL[name].items()
                if k in ("train", "val", "test", "train_ids", "val_ids", "test_ids", "action_list")
            ]
    return files
