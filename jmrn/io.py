"""Small I/O helpers: atomic writes, logging set-up, safe YAML/JSON, checkpoint saving."""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``final`` only if the block succeeds.

    Works for files and directories (e.g. Zarr stores). The temporary name keeps the suffix,
    because some writers (OpenCV, Zarr) choose the format from it. A killed job leaves only a
    hidden ``.*.tmp-<pid>*`` entry, which no rule declares and no rerun trusts; the next write of
    the same output removes it (Snakemake never runs two jobs for one output).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp-{os.getpid()}{final.suffix}")
    for stale in final.parent.glob(f".{glob.escape(final.stem)}.tmp-*{glob.escape(final.suffix)}"):
        _remove(stale)  # left by a killed job: one job writes an output at a time
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically and reproducibly: through an open file, so the archive's
    internal name does not come from the (per-process) temporary file name."""
    import torch

    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            torch.save(obj, fh)
    except RuntimeError as exc:  # torch's writer reports a failed write as its own error
        fault = _os_error_in_chain(exc)
        if fault is None:
            raise
        raise OSError(fault.errno, fault.strerror, str(path)) from exc


def _os_error_in_chain(exc: BaseException) -> OSError | None:
    """The ``OSError`` (full disk, I/O error) behind an exception, if one caused it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


# Per-video columns of logits / joint-weight tables that are not values ("labels": multi-label).
VIDEO_TABLE_META = ("video_id", "subset", "label", "labels")


def value_columns(table: Any) -> list[str]:
    """The class (or joint) columns of a per-video table, in file order."""
    return [c for c in table.columns if c not in VIDEO_TABLE_META]


def read_video_table(path: str | os.PathLike) -> Any:
    """A per-video CSV we wrote (logits, joint weights): ids stay strings, nothing is parsed as
    NaN, and the formula escape of ``jmrn.tables.write_csv`` is removed from the ids."""
    import pandas as pd

    from jmrn.tables import unescape_columns

    return unescape_columns(pd.read_csv(path, dtype={"video_id": str, "labels": str},
                                        keep_default_na=False, encoding="utf-8"))


def read_utf8_text(path: str | os.PathLike) -> str:
    """A file's text as UTF-8 (a leading byte-order mark dropped). Another encoding is a one-line
    ``UserError`` naming the first bad byte, its offset and line; a storage error an ``OSError``
    naming the file."""
    from jmrn.errors import UserError

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, f"cannot read {path}: {exc.strerror or exc}", str(path)) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset "
                        f"{exc.start}, line {line}); save the file as UTF-8") from exc
    return text.removeprefix("\ufeff")


# Values a YAML file may expand to: aliases let a few lines name billions of values (a "billion
# laughs" file), which every later copy or validation would then walk.
MAX_YAML_VALUES = 100_000


def _expanded_size_within(data: Any, budget: int) -> bool:
    """Whether ``data``, with every alias expanded, holds at most ``budget`` values; stops
    counting as soon as the budget is spent (so it is fast on a file that explodes)."""
    stack = [data]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            return False
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True


def read_yaml(path: str | os.PathLike) -> Any:
    """Load YAML with ``safe_load`` (no arbitrary object construction); an unreadable file, a
    file that is not UTF-8 text, a syntax error or a file that expands (through aliases) to more
    than ``MAX_YAML_VALUES`` values is a one-line ``UserError`` naming the file."""
    from jmrn.errors import UserError

    try:
        data = yaml.safe_load(read_utf8_text(path))
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: YAML syntax error: {problem}") from exc
    if not _expanded_size_within(data, MAX_YAML_VALUES):
        raise UserError(f"{path}: expands to more than {MAX_YAML_VALUES:,} values (YAML aliases "
                        "repeating one another?); a config is far smaller")
    return data


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log to ``log_file`` (a rule's log) or stderr, replacing earlier handlers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


class LogWriter:
    """File-like object that forwards tqdm's progress lines to a logger (one line per update)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def write(self, text: str) -> int:
        text = text.strip("\r\n ")
        if text:
            self.logger.info(text)
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def run_folder_lock(folder: str | os.PathLike, stage: str) -> Iterator[None]:
    """Hold ``<folder>/.jmrn.lock`` while a job writes that run's checkpoint and files, so that
    two jobs (an orphan of a killed Snakemake and its rerun, say) never write them at once. A
    POSIX record lock (``fcntl.lockf``: NFS carries it), released when the process ends however
    it ends. A second job stops at once with a UserError naming the holder."""
    import fcntl
    import socket

    from jmrn.errors import UserError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".jmrn.lock"
    fh = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise UserError(f"{folder} is being written by {holder}; this job stops rather than "
                            "write the same checkpoint at once (end that job, or wait for it, "
                            "then rerun: python -m jmrn slurm lists jobs left running)") from None
        fh.seek(0)
        fh.truncate()
        job = os.environ.get("SLURM_JOB_ID")
        fh.write(f"{stage} (pid {os.getpid()} on {socket.gethostname()}"
                 f"{', SLURM job ' + job if job else ''})\n")
        fh.flush()
        yield
    finally:
        fh.close()  # closing releases the lock
