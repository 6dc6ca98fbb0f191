"""Configuration helpers: variant resolution, cross-field checks and fingerprints."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

# Names that become folders of results/ (variants, fusions, external streams): no separators,
# no "..", no leading dot or dash (the schema's ``folder_name``). "fusion" is the folder of the
# fusions beside the variants' folders, so no variant may take it.
SAFE_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.+-]*$")
RESERVED_VARIANT_NAMES = ("fusion",)


def name_problems(config: dict[str, Any]) -> list[str]:
    """One message per config name that is unsafe as a folder name or taken twice."""
    problems = []
    sections = {"variants": config.get("variants") or {}, "fusion": config.get("fusion") or {},
                "external_logits": config.get("external_logits") or {}}
    for section, names in sections.items():
        for name in names:
            if not isinstance(name, str) or not SAFE_NAME.match(name) or len(name) > 100:
                problems.append(f"{section} name {name!r} is not a safe folder name (letters, "
                                "digits, _ . + -, starting with a letter or digit, no '..')")
    for name in sections["variants"]:
        if name in RESERVED_VARIANT_NAMES:
            problems.append(f"variants name {name!r} is reserved (results/<dataset>/split<k>/"
                            f"{name}/ holds the fusions); rename the variant")
    for name in sections["fusion"]:
        if name in sections["variants"]:
            problems.append(f"fusion {name!r} has the name of a variant; rename the fusion")
        if name in sections["external_logits"]:
            problems.append(f"fusion {name!r} has the name of an external stream; rename the fusion")
    return problems

# Model options each architecture accepts; the top-level ``model`` section holds defaults for
# all variants and only the keys an architecture knows reach it.
ARCH_OPTIONS = {
    "potion": ("width", "extra_layers", "dropout"),
    "jmrn": ("width", "siamese", "reweight", "hard_selector", "c_dim", "proj_dim",
             "extractor_width", "extractor_layers", "dropout"),
}


def fingerprint(*parts: Any) -> str:
    """Short, stable hash of JSON-serialisable settings (key order does not matter)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_config(config: dict[str, Any]) -> None:
    """Cross-field checks that the JSON schema cannot express; raises ValueError with the fix."""
    variants = set(config["variants"])
    problems = name_problems(config)
    for name in config["run_variants"]:
        if name not in variants:
            problems.append(f"run_variants names {name!r}, which is not under variants")
    external = config.get("external_logits") or {}
    for name in external:
        if name in variants:
            problems.append(f"external_logits {name!r} has the name of a variant")
    for name, spec in external.items():
        for subset in ("train", "val", "test"):
            if subset in spec and str(spec[subset]).endswith(".npy") and f"{subset}_ids" not in spec:
                problems.append(f"external_logits {name!r}: a .npy {subset} file needs {subset}_ids")
    for name, spec in config["variants"].items():
        ref = spec.get("match_parameters")
        if ref is not None and (ref not in variants or ref == name):
            problems.append(f"variants.{name}.match_parameters names {ref!r}, which is not "
                            "another variant")
        elif ref is not None and config["variants"][ref].get("match_parameters"):
            problems.append(f"variants.{name}.match_parameters names {ref!r}, which is itself "
                            "matched to another variant")
    for fusion, members in (config.get("fusion") or {}).items():
        for name in members:
            if name not in config["run_variants"] and name not in external:
                problems.append(f"fusion {fusion!r} uses {name!r}, which is neither in "
                                "run_variants nor in external_logits")
        if not any(name in config["run_variants"] for name in members):
            problems.append(f"fusion {fusion!r} needs at least one of run_variants")
    focus = config["report"]["focus_variant"]
    if focus not in config["run_variants"]:
        problems.append(f"report.focus_variant {focus!r} is not in run_variants")
    metric = config["report"].get("metric", "mean_class_accuracy")
    if config["dataset"]["adapter"] == "charades" and metric != "mAP":
        problems.append(f"report.metric {metric!r} is not defined for multi-label Charades; use mAP")
    crop = (config.get("augment") or {}).get("crop")
    if crop:
        size = map_size(config)
        if crop["height"] > size[0] or crop["width"] > size[1]:
            problems.append(f"augment.crop {crop['height']} x {crop['width']} is larger than the "
                            f"PoTion maps ({size[0]} x {size[1]})")
    demo = config.get("demo") or {}
    if demo.get("min_frames", 2) > demo.get("max_frames", 2 ** 31):
        problems.append("demo.min_frames is larger than demo.max_frames")
    if problems:
        raise ValueError("; ".join(problems))


POSE_SOURCES = {"markers": "rendered markers", "openpifpaf": "openpifpaf", "mediapipe": "MediaPipe",
                "openpose": "OpenPose", "openpose_heatmaps": "OpenPose", "alphapose": "AlphaPose",
                "keypoints": "given keypoints"}


def pose_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The pose section as the pose jobs see it: only the chosen backend's options, so that
    another backend's settings (config.yaml's openpifpaf checkpoint, say) never rerun them."""
    pose = dict(config["pose"])
    options = pose.get("options") or {}
    pose["options"] = {pose["backend"]: options[pose["backend"]]} if pose["backend"] in options else {}
    return pose


def pose_source(config: dict[str, Any]) -> str:
    """Where a run's poses come from, in words for the tables: JHMDB's puppet joints are the
    ground truth, other keypoint files are some estimator's output."""
    backend = config["pose"]["backend"]
    if backend == "keypoints" and config["dataset"]["adapter"] == "jhmdb" \
            and config["dataset"].get("joint_root"):
        return "ground-truth joints"
    return POSE_SOURCES.get(backend, backend)


def map_size(config: dict[str, Any]) -> tuple[int, int]:
    """H x W of the PoTion maps the models see: the person crop for datasets of person boxes
    (AVA), else the pose stage's heatmap size."""
    if config["dataset"]["adapter"] == "ava":
        person = (config.get("potion") or {}).get("person") or {}
        return int(person.get("height", 32)), int(person.get("width", 32))
    return int(config["pose"]["height"]), int(config["pose"]["width"])


CONTRASTIVE_KEYS = ("contrastive_weight", "temperature", "contrastive_ramp")


def _resolve_one(config: dict[str, Any], name: str) -> dict[str, Any]:
    spec = config["variants"][name]
    arch = spec["arch"]
    options = {**config["model"], **spec.get("model", {})}
    model = {k: v for k, v in options.items() if k in ARCH_OPTIONS[arch]}
    augment = {**config["augment"], **spec.get("augment", {})}
    crop = augment.pop("crop", None)
    if not spec.get("paa", False):  # without pose-aware augmentation only the flip remains
        augment.update(global_jitter=0.0, group_jitter=0.0)
    uses_augment = augment["flip"] or augment["global_jitter"] or augment["group_jitter"] \
        or augment["rotation"]
    return {"arch": arch, "model": model, "augment": augment if uses_augment else None,
            "crop": [crop["height"], crop["width"]] if crop else None,
            "contrastive": bool(spec.get("contrastive", False)) and arch == "jmrn",
            "paa": bool(spec.get("paa", False))}


def resolve_variant(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Everything that defines one variant, defaults applied: arch, model options, the
    augmentation it trains with (None = none), its crop window ([H, W] or None), the
    contrastive switch, and the variant whose
    parameter count its size is matched to (``match``, resolved the same way) if any."""
    resolved = {"name": name, **_resolve_one(config, name), "match": None}
    ref = config["variants"][name].get("match_parameters")
    if ref:
        resolved["match"] = {"name": ref, **_resolve_one(config, ref)}
    return resolved


# How a job reads its maps: never changes a result, so never reruns a training or export
# (stages take them from the config, not from the rules' params).
READING_KEYS = ("max_memory_gb", "loader_workers")


def train_settings(config: dict[str, Any], variant: str) -> dict[str, Any]:
    """The training settings that affect one variant: contrastive-loss keys only for variants
    that use it, so tuning them does not invalidate (and retrain) the other variants."""
    settings = {k: v for k, v in config["train"].items() if k not in READING_KEYS}
    if not config["variants"][variant].get("contrastive", False):
        for key in CONTRASTIVE_KEYS:
            settings.pop(key, None)
    return settings
