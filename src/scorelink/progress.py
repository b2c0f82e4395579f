"""Progress on stderr for the long steps (building, indexing, the demo): tqdm bars and one-line
notes of the steps that have no count, both silent when `enabled` is false (`--no-progress`).

    for piece in bar(pieces, enabled=progress, desc="indexing scores", unit="file"):
        ...
    with bar(total=len(strips), enabled=progress, desc="indexing systems", unit="system") as b:
        b.update(n)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable


def bar(items: Iterable | None = None, *, enabled: bool, desc: str, unit: str,
        total: int | None = None):
    """A tqdm bar over `items` (or one to `update` by hand, given `total`); a disabled bar
    iterates and updates as the plain items would, drawing nothing."""
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def note(message: str, *, enabled: bool) -> None:
    """A step without a count ("loading the model ..."), on its own line."""
    if enabled:
        print(message, file=sys.stderr, flush=True)
