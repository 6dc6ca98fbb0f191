"""Collects dataset problems (missing files, bad lines, ...) and reports counts and examples."""
from __future__ import annotations

import logging
from collections import defaultdict

from jmrn.errors import UserError

log = logging.getLogger(__name__)


class DatasetError(UserError):
    """A dataset or its configuration cannot be used; the message says what to fix (one line)."""


class DatasetProblems:
    """Problems grouped by kind; each kind is logged once as a count with its first examples."""

    def __init__(self, examples: int = 3) -> None:
        self.examples = examples
        self.items: dict[str, list[str]] = defaultdict(list)

    def add(self, kind: str, detail: str) -> None:
        self.items[kind].append(detail)

    def add_many(self, kind: str, details: list[str]) -> None:
        """Record several problems of one kind (none: the kind is not created)."""
        if details:
            self.items[kind].extend(details)

    def summary(self) -> list[str]:
        lines = []
        for kind, details in self.items.items():
            shown = "; ".join(details[: self.examples])
            more = f" (+{len(details) - self.examples} more)" if len(details) > self.examples else ""
            lines.append(f"{kind}: {len(details)} — e.g. {shown}{more}")
        return lines

    def log(self) -> None:
        for line in self.summary():
            log.warning(line)

    def settle(self, on_problem: str) -> None:
        """Log every kind; with ``on_problem: fail`` stop with all of them on one line."""
        self.log()
        if self.items and on_problem == "fail":
            raise DatasetError("dataset problems (set dataset.on_problem: warn to record and skip "
                               "them instead): " + " | ".join(self.summary()))
