"""One-sentence errors for names a user typed."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


def unknown_name_error(kind: str, name: str, valid: Sequence[str]) -> ValueError:
    """A ``ValueError`` naming the valid choices and the closest match, e.g. for a scenario."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Valid: {', '.join(valid)}.")
