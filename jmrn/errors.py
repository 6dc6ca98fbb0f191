"""Errors that a user fixes (data, paths, settings): stages print them as one line, no traceback."""
from __future__ import annotations


class UserError(ValueError):
    """Something the user must change; the message says what, on one line."""
