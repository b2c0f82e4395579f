"""One BLAS thread for a query's small matrix products.

numpy's OpenBLAS (and the one FAISS bundles) keeps its worker threads spinning for a while
after every call. A query's products are small (a clip's 100 frames against the few thousand
score frames it is aligned to), and on a 2-core machine the spinning threads took the cores
that PyTorch's embedding and FAISS's search needed next. Held to one thread during a query
(with the other query changes of 2026-12-07), `benchmarks/search_speed.py --notes-only` at
10,000 systems went from p50 265-305 to 149-174 ms, and this process's CPU time per query from
518-595 to 225-262 ms (docs/search.md). Indexing and training, whose products are large, keep
every thread: the limit holds only inside a query.
(threadpoolctl: the library scikit-learn uses for this; OpenBLAS has no per-call setting.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


@functools.lru_cache(maxsize=1)
def _openblas():
    """The OpenBLAS libraries of numpy and FAISS (found once: scanning takes ms). Both are
    imported first: a library loaded after the scan would not be limited."""
    import faiss  # noqa: F401
    import numpy  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(internal_api="openblas")


def one_blas_thread(function: F) -> F:
    """Run `function` with OpenBLAS held to one thread (restored after, also on errors)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with _openblas().limit(limits=1):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
