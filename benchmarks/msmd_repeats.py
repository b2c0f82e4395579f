"""How many of an MSMD split's systems come from unfolding repeats.

    python benchmarks/msmd_repeats.py --data data/msmd --msmd-dir ../shared/data/msmd --split test

scorelink engraves `\\repeat volta` / `\\repeat percent` unfolded, so that every system sounds
exactly once. This engraves each built piece of the split whose sources hold such a repeat a
second time as written (repeat signs, `unfold=False`) and counts its systems, to show how much
of the difference between our passage count and the paper's the unfolding explains.
Prints a Markdown block for docs/msmd.md.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py

from scorelink.data.lilypond import _REPEAT, engrave_lilypond


def _has_repeats(main: Path) -> bool:
    return any(_REPEAT.search(f.read_text(errors="replace"))
               for f in [*main.parent.rglob("*.ly"), *main.parent.rglob("*.ily")])


def _as_written(origin: str) -> int | str:
    try:
        return len(engrave_lilypond(origin, unfold=False).systems)
    except Exception as exc:  # reported in the table, not fatal
        return f"{type(exc).__name__}: {exc}"[:120]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="a built MSMD dataset folder")
    p.add_argument("--msmd-dir", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    table = json.loads((Path(args.msmd_dir) / "splits.json").read_text())
    pieces = []
    for entry in table[args.split]:
        info = Path(args.data) / "pieces" / entry["piece"] / "piece.json"
        if info.exists():
            pieces.append(json.loads(info.read_text()))
    repeated = [p for p in pieces if _has_repeats(Path(p["origin"]))]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        written = list(pool.map(_as_written, [p["origin"] for p in repeated]))
    unfolded_all = sum(len(p["systems"]) for p in pieces)
    ok = [(p, w) for p, w in zip(repeated, written, strict=True) if isinstance(w, int)]
    unfolded = sum(len(p["systems"]) for p, _ in ok)
    as_written = sum(w for _, w in ok)
    print(f"### Repeats in the MSMD {args.split} split ({date.today()}, {machine()})\n")
    print(f"    python benchmarks/msmd_repeats.py --data {args.data} --msmd-dir {args.msmd_dir} "
          f"--split {args.split}\n")
    print(f"- built pieces: {len(pieces)}, systems (repeats unfolded): {unfolded_all}")
    print(f"- pieces whose sources hold `\\repeat volta|percent`: {len(repeated)}")
    print(f"- of those, engraved again as written: {len(ok)}; their systems unfolded "
          f"{unfolded}, as written {as_written}")
    print(f"- the split as written would have {unfolded_all - unfolded + as_written} systems")
    print(f"- {time.perf_counter() - t0:.0f} s\n")
    for p, w in zip(repeated, written, strict=True):
        if not isinstance(w, int):
            print(f"- not engraved as written: {p['piece']}: {w}")


if __name__ == "__main__":
    main()
