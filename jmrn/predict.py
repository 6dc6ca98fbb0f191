"""Recognise actions in new videos with a trained model's bundle (``python -m jmrn predict``).

A video goes the way the training videos went, as the bundle's card records it: decoded, turned
into joint heatmaps by the pose backend (the card's, or another that reads pixels), aggregated
into a PoTion map with the card's settings, rounded to float16 as the store holds maps, centre
cropped as in evaluation, and classified. Joints the training poses never had (the card's
``absent_joints``) are zeroed, so a model trained on a layout without them sees what it knows.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from jmrn.datasets.files import is_video
from jmrn.errors import UserError
from jmrn.io import LogWriter
from jmrn.model_card import card_paths, read_card
from jmrn.pose.base import BACKENDS, PoseBackend, backend_class, make_backend
from jmrn.pose.skeleton import JOINTS
from jmrn.potion import PotionAccumulator
from jmrn.tables import write_csv
from jmrn.train import build_variant_model, predict
from jmrn.video import VideoError, probe_fields

log = logging.getLogger(__name__)
VIDEOS_PER_BATCH = 16  # maps classified together (a batch holds their float16 maps)


@dataclass
class Bundle:
    """A trained model rebuilt from its run folder: the card and the network in eval mode."""
    card: dict[str, Any]
    model: nn.Module
    path: Path


def load_bundle(path: str | os.PathLike) -> Bundle:
    """The model of a bundle (run folder or card file); weights read with ``weights_only``."""
    card = read_card(path)
    _, weights = card_paths(path)
    model = build_variant_model(card["variant_settings"], tuple(card["map_shape"]), len(card["classes"]))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return Bundle(card, model.eval(), Path(path))


def pose_backend_for(card: dict[str, Any], backend: str | None = None,
                     options: dict[str, Any] | None = None) -> PoseBackend:
    """The pose backend that makes the bundle's heatmaps from a video's pixels: the card's
    backend and options, or ``backend`` (with ``options``); one line when none can."""
    pose = card["pose"]
    if card["potion"].get("person"):
        raise UserError("this model classifies person boxes at keyframes (AVA); predict reads "
                        "whole videos: evaluate it with `python -m jmrn evaluate` instead")
    if card["joints"] != list(JOINTS):
        raise UserError(f"the model reads {len(card['joints'])} joints ({', '.join(card['joints'][:4])}, "
                        f"...) but pose backends give the {len(JOINTS)} of this version; no "
                        "conversion between these layouts exists")
    name = backend or pose["backend"]
    try:
        cls = backend_class(name)
    except ValueError:
        raise UserError(f"unknown pose backend {name!r}; backends that read videos: "
                        f"{', '.join(pixel_backends())}") from None
    if not cls.reads_pixels:
        raise UserError(f"pose backend {name!r} reads files other tools wrote for each video, "
                        "not a video's pixels; choose one that does: --backend mediapipe, "
                        "openpifpaf or markers (the demo's)")
    given = dict(((pose.get("options") or {}).get(name) or {}) if name == pose["backend"] else {})
    given.update(options or {})
    try:
        return make_backend(name, int(pose["height"]), int(pose["width"]), given)
    except (TypeError, ValueError) as exc:
        raise UserError(f"pose backend {name!r}: {exc}") from exc


def pixel_backends() -> list[str]:
    """Registered pose backends that read a video's pixels (predict can use them)."""
    return [n for n in sorted(BACKENDS) if backend_class(n).reads_pixels]


def find_videos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The video files named, and those under the folders named (recursively, sorted)."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and is_video(p))
        elif item.is_file():
            found.append(item)
        else:
            raise UserError(f"{item}: no such file or folder")
    found = list(dict.fromkeys(found))  # a file named and found in a folder named: once
    if not found:
        raise UserError(f"no videos ({', '.join(map(str, inputs))}); looked for .avi, .mp4, .mkv, .mov, .webm")
    return found


def readable_name(path: Path) -> str:
    """The path as text; a name that is not UTF-8 is refused before OpenCV sees it (OpenCV
    crashes the process on such names)."""
    try:
        return os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise VideoError("its file name is not valid UTF-8 (rename it)") from None


def video_heatmaps(backend: PoseBackend, path: Path, absent: list[int]) -> np.ndarray:
    """All heatmaps of a video (T x J x H x W uint8), joints absent in training zeroed."""
    row = {"video_id": path.stem, "path": readable_name(path), **probe_fields(path)}
    if row["status"] != "ok":
        raise VideoError(row["status"])
    heatmaps = np.concatenate(list(backend.heatmaps(row)))
    heatmaps[:, absent] = 0
    return heatmaps


def potion_map(heatmaps: np.ndarray, potion: dict[str, Any]) -> np.ndarray:
    """The PoTion map of a video's heatmaps with the card's settings, as the store keeps it."""
    acc = PotionAccumulator(len(heatmaps), int(potion["channels"]), heatmaps.shape[1:],
                            potion.get("normalisation", "area"), potion.get("extra_channels", ()))
    for start in range(0, len(heatmaps), 64):
        acc.update(heatmaps[start:start + 64])
    return acc.result().astype(np.float16)


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Softmax over classes (one action per video), or a sigmoid per class (multi-label)."""
    scores = torch.from_numpy(logits).double()
    return (scores.sigmoid() if multilabel else scores.softmax(dim=1)).numpy()


def _batches(videos: list[Path], size: int) -> Iterator[tuple[int, list[Path]]]:
    for start in range(0, len(videos), size):
        yield start, videos[start:start + size]


def predict_videos(bundle: Bundle, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   backend: str | None = None, options: dict[str, Any] | None = None, top: int = 5,
                   sheets: bool = True) -> pd.DataFrame:
    """Classify every video of ``inputs``; write ``predictions.csv`` (one row per video: status,
    the top classes and their probabilities), ``probabilities.csv`` (every class) and a contact
    sheet per video under ``out_dir``. A video that cannot be read gets its reason as status."""
    from jmrn.contact_sheet import write_contact_sheet

    card = bundle.card
    pose = pose_backend_for(card, backend, options)
    videos = find_videos(inputs)
    classes, top = card["classes"], max(1, min(top, len(card["classes"])))
    absent = [JOINTS.index(j) for j in card.get("absent_joints", [])]
    crop = (card["crop"]["height"], card["crop"]["width"]) if card.get("crop") else None
    out = writable_folder(out_dir)
    rows: list[dict[str, Any]] = []
    probs: list[np.ndarray] = []
    progress = tqdm(total=len(videos), desc="predict", unit="video", file=LogWriter(log), mininterval=2.0)
    for first, batch in _batches(videos, VIDEOS_PER_BATCH):
        results: list[dict[str, Any]] = []
        maps, kept = [], []
        for path in batch:
            try:
                heatmaps = video_heatmaps(pose, path, absent)
            except (VideoError, ValueError) as exc:  # the video's content: recorded, skipped
                results.append({"video": shown_path(path), "status": f"{type(exc).__name__}: {exc}",
                                "frames": 0})
            else:
                maps.append(potion_map(heatmaps, card["potion"]))
                kept.append((len(results), heatmaps))
                results.append({"video": shown_path(path), "status": "ok", "frames": len(heatmaps)})
            progress.update()
        scores = [np.full(len(classes), np.nan) for _ in batch]
        if maps:
            logits = predict(bundle.model, torch.from_numpy(np.stack(maps)), len(classes), crop=crop)["logits"]
            for (at, heatmaps), p in zip(kept, probabilities(logits, card["multilabel"])):
                order = np.argsort(-p, kind="stable")[:top]
                for rank, k in enumerate(order, 1):
                    results[at][f"top{rank}"] = classes[k]
                    results[at][f"top{rank}_probability"] = round(float(p[k]), 6)
                scores[at] = p
                if sheets:
                    title = ", ".join(f"{classes[k]} {p[k]:.2f}" for k in order[:3])
                    name = f"{first + at:04d} {sheet_name(batch[at])}.png"
                    write_contact_sheet(batch[at], heatmaps, title, out / "sheets" / name)
        rows += results
        probs += scores
    progress.close()
    columns = ["video", "status", "frames"] + [f"top{r}{s}" for r in range(1, top + 1)
                                               for s in ("", "_probability")]
    table = pd.DataFrame(rows, columns=columns)
    write_csv(table, out / "predictions.csv")
    write_csv(pd.concat([table[["video"]], pd.DataFrame(np.array(probs), columns=classes)], axis=1),
              out / "probabilities.csv")
    return table


def shown_path(path: Path) -> str:
    """The path for tables and messages (undecodable bytes as escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def writable_folder(folder: str | os.PathLike) -> Path:
    """``folder``, created; one line when it cannot be (a file there, no permission), before
    any video is read."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".jmrn-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--out {folder}: cannot write there ({exc.strerror or exc})") from exc
    return out


def sheet_name(path: Path) -> str:
    """A file name for a video's sheet: its stem, with characters file systems refuse replaced."""
    return "".join(c if c.isalnum() or c in " ._-()" else "_" for c in path.stem) or "video"


def print_predictions(table: pd.DataFrame, top: int) -> str:
    """The table as console lines: each video's top classes, or why it was skipped."""
    lines = []
    for row in table.to_dict("records"):
        if row["status"] != "ok":
            lines.append(f"{row['video']}: skipped ({row['status']})")
            continue
        ranked = [f"{r}. {row[f'top{r}']} {row[f'top{r}_probability']:.3f}"
                  for r in range(1, top + 1) if isinstance(row.get(f"top{r}"), str)]
        lines.append(f"{row['video']}:  " + "   ".join(ranked))
    return "\n".join(lines)
