"""Loading untrusted pickles (mmaction2 / pyskl skeleton files) without running their code.

A pickle can name any importable callable; ``RestrictedUnpickler`` admits only what numpy
arrays and plain containers need and refuses everything else before it is called.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"), ("builtins", "slice"),
    ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
})


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``ALLOWED_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: skeleton pickles may hold only numpy arrays "
                "and plain containers")
        return super().find_class(module, name)


def safe_load(path: str | os.PathLike) -> Any:
    """Load a pickle file, admitting only numpy arrays and plain Python containers."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh).load()


def safe_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()
