"""Index a collection in one call: collect (engrave, find systems, cut windows), embed, write.

    from scorelink.search.indexing import index_collection

    report = index_collection("my.idx", scores=["scores/", "book.pdf"], recordings=["audio/"])
    print(report.systems, report.windows, report.skipped)

The command line (`scorelink index`), the demo and Python users all index through here.
A file that cannot be indexed (a photo without staves, an unreadable recording, a score that
cannot be read whole) is skipped and listed in the report with its reason, as the dataset
builder lists its failures; only a collection of which nothing could be indexed is an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scorelink.errors import ScorelinkError
from scorelink.progress import note

if TYPE_CHECKING:
    from scorelink.search.embed import Embedder
    from scorelink.search.index import Index


@dataclass
class IndexReport:
    """What one `index_collection` call did."""

    out: Path
    added: bool  # appended to an existing index
    systems: int  # systems embedded by this call
    windows: int  # audio windows embedded by this call
    total_systems: int  # in the index afterwards
    total_windows: int
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}, in input order
    seconds: float = 0.0


def index_collection(out: str | Path, *, scores: Iterable[str | Path] = (),
                     recordings: Iterable[str | Path] = (), data: str | Path | None = None,
                     split: str = "test", checkpoint: str | Path | None = None,
                     embedder: Embedder | None = None, add: bool = False,
                     approximate: bool = False, progress: bool = True) -> IndexReport:
    """Embed score files, page images, PDFs, recordings and/or a dataset's `split` into the
    index folder `out` (a new one, or an existing one with `add=True`).

    `embedder` (or else `checkpoint`, or else the shipped model) embeds both sides; an index
    answers only queries of the model that made it. `approximate`: an HNSW graph instead of
    exact search. Raises ScorelinkError when nothing is given, or nothing could be indexed.
    """
    from scorelink.search import collect
    from scorelink.search.embed import MODEL_FILE, Embedder
    from scorelink.search.index import Index, Pending

    scores, recordings = _paths(scores), _paths(recordings)
    if not (data or scores or recordings):
        raise ScorelinkError("nothing to index: give a dataset, score files and/or recordings")
    t0 = time.perf_counter()
    if embedder is None:
        note(f"loading the model ({checkpoint or 'the shipped model'})", enabled=progress)
        embedder = Embedder.load(checkpoint)
    pending = Pending()
    if data:
        pending.extend(collect.from_dataset(data, embedder, split=split, progress=progress))
    if scores:
        pending.extend(collect.from_scores(scores, embedder, progress=progress))
    if recordings:
        pending.extend(collect.from_recordings(recordings, embedder, progress=progress))
    if not pending.systems and not pending.windows:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in pending.skipped[:5])
        raise ScorelinkError(f"nothing could be indexed ({len(pending.skipped)} files "
                             f"skipped: {reasons})")
    note(f"writing {out}: {len(pending.systems)} systems, {len(pending.windows)} audio "
         f"windows, {len(pending.pages)} page images", enabled=progress)
    index: Index = Index.write(out, pending, model_name=embedder.name,
                               fingerprint=embedder.fingerprint, dim=embedder.dim, add=add,
                               kind="hnsw" if approximate else "flat")
    if not (index.root / MODEL_FILE).is_file():  # its model, for queries without PyTorch
        embedder.export(index.root / MODEL_FILE)
    report = IndexReport(out=Path(out), added=add, systems=len(pending.systems),
                         windows=len(pending.windows), total_systems=index.sheet.ntotal,
                         total_windows=index.audio.ntotal, skipped=pending.skipped,
                         seconds=time.perf_counter() - t0)
    index.close()
    return report


def _paths(paths: Iterable[str | Path] | str | Path) -> list[str]:
    return [str(paths)] if isinstance(paths, (str, Path)) else [str(p) for p in paths]
