# Shared names and input functions. No pipeline logic lives here: only paths from the config.
import re

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


# Every per-run output path, spelled once (rules use them with wildcards, `all` and the report
# expand them).
RUN_DIR = "results/{dataset}/split{split}/{variant}/seed{seed}"
FUSION_DIR = "results/{dataset}/split{split}/fusion/{fusion}/seed{seed}"


def run_file(name, **wildcards):
    """A run's file, e.g. run_file("metrics.json", split=1, variant="jmrn", seed=0)."""
    return expand(f"{RUN_DIR}/{name}", dataset=DATASET, **wildcards)


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
    """Our variants' logits and the external streams' files (so edits to them rerun fusion)."""
    files = {
        "variant_logits": [
            RUN_DIR.format(dataset=DATASET, split=wildcards.split, variant=m, seed=wildcards.seed)
            + "/logits.csv"
            for m in fusion_variants(wildcards)
        ],
        "external": [],
    }
    for name in FUSIONS[wildcards.fusion]:
        if name in EXTERNAL:
            files["external"] += [
                v.format(split=wildcards.split)
                for k, v in EXTERNAL[name].items()
                if k in ("train", "val", "test", "train_ids", "val_ids", "test_ids")
            ]
    return files
