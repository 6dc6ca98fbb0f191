# Shared names and input functions. No pipeline logic lives here: only paths from the config.
import re

DATASET = config["dataset"]["name"]
SPLITS = [int(s) for s in config["dataset"]["splits"]]
VARIANTS = list(config["run_variants"])
N_SHARDS = int(config["pose"]["shards"])
SHARDS = [f"shard{i:03d}" for i in range(N_SHARDS)]
FUSIONS = dict(config.get("fusion", {}))
STAGE_SCRIPT = "../workflow/scripts/run_stage.py"


wildcard_constraints:
    dataset=re.escape(DATASET),
    shard=r"shard\d{3,4}",
    split=r"\d+",
    variant="|".join(re.escape(v) for v in config["variants"]),
    fusion="|".join(re.escape(f) for f in FUSIONS) or "(?!)",


def variant_dir(split, variant):
    return f"results/{DATASET}/split{split}/{variant}"


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
            f"{variant_dir(wildcards.split, m)}/logits.csv" for m in fusion_variants(wildcards)
        ],
        "external": [],
    }
    for name in FUSIONS[wildcards.fusion]:
        if name in EXTERNAL:
            files["external"] += [
                v.format(split=wildcards.split)
                for k, v in EXTERNAL[name].items()
                if k in ("train", "test", "train_ids", "test_ids")
            ]
    return files
