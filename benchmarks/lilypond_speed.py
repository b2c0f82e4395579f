"""Benchmark: LilyPond's SVG run with its own glyph lookup and with ours, side by side.

    python benchmarks/lilypond_speed.py --msmd-dir ../shared/data/msmd --pieces 6

Each piece (the first N of MSMD's test split) is prepared as `engrave_lilypond` prepares it
(convert-ly, our settings), then engraved to SVG twice in a row, once with LilyPond 2.24's
`cache-font` and once with `_SVG_GLYPH_INDEX` (src/scorelink/data/lilypond.py), the order
alternating from piece to piece. The two SVGs must be identical but for the point-and-click
links (they name the file). The pages are then rasterised 835 px wide with CairoSVG and with
librsvg (`rsvg-convert`, what `engrave_lilypond` uses), side by side. Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py

from scorelink.constants import PAGE_WIDTH
from scorelink.data.lilypond import _SVG_GLYPH_INDEX, _prepare
from scorelink.data.sources import msmd_sources


def rasterise_seconds(pages: list[str]) -> dict[str, float]:
    """Seconds to rasterise the pages with CairoSVG and with librsvg, alternating page by page."""
    import cairosvg

    from scorelink.data.lilypond import _rasterise

    seconds = {"cairosvg": 0.0, "librsvg": 0.0}
    for svg in pages:
        t0 = time.perf_counter()
        cairosvg.svg2png(bytestring=svg.encode(), output_width=PAGE_WIDTH,
                         background_color="white")
        t1 = time.perf_counter()
        _rasterise(svg)
        seconds["cairosvg"] += t1 - t0
        seconds["librsvg"] += time.perf_counter() - t1
    return seconds


def engrave(main: Path, out: Path) -> tuple[float, list[str]]:
    out.mkdir()
    t0 = time.perf_counter()
    run = subprocess.run(["lilypond", "-dbackend=svg", "-dpoint-and-click", "-o",
                          str(out / "score"), str(main)], cwd=out, capture_output=True,
                         text=True)
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{main}: lilypond failed:\n{run.stderr[-1000:]}")
    pages = sorted(out.glob("score*.svg"))
    return seconds, [p.read_text() for p in pages]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--msmd-dir", required=True)
    p.add_argument("--pieces", type=int, default=6)
    args = p.parse_args()
    sources = [s for s in msmd_sources(args.msmd_dir) if s.split == "test"][: args.pieces]
    rows = []
    totals = {"lilypond": 0.0, "ours": 0.0, "cairosvg": 0.0, "librsvg": 0.0, "pages": 0}
    for n, source in enumerate(sources):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "src"
            shutil.copytree(Path(source.origin).parent, work)
            indexed = work / Path(source.origin).name
            _prepare(work, indexed)
            plain = indexed.with_name("plain-" + indexed.name)
            plain.write_text(indexed.read_text().replace(_SVG_GLYPH_INDEX, "", 1))
            runs = [("lilypond", plain), ("ours", indexed)]
            result = {}
            for name, main_file in runs if n % 2 == 0 else runs[::-1]:
                result[name] = engrave(main_file, Path(tmp) / name)
            unlinked = {k: [re.sub(r'textedit://[^"]*', "", s) for s in v[1]]
                        for k, v in result.items()}
            if unlinked["lilypond"] != unlinked["ours"]:
                raise SystemExit(f"{source.piece}: the SVG pages differ")
            for name in ("lilypond", "ours"):
                totals[name] += result[name][0]
            for name, seconds in rasterise_seconds(result["ours"][1]).items():
                totals[name] += seconds
            totals["pages"] += len(result["ours"][1])
            rows.append(f"| {source.piece} | {len(result['ours'][1])} | "
                        f"{result['lilypond'][0]:.1f} | {result['ours'][0]:.1f} | "
                        f"{result['lilypond'][0] / result['ours'][0]:.1f}x |")
    version = subprocess.run(["lilypond", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    print(f"{date.today()}, {machine()}, {version}\n")
    print("| piece | pages | LilyPond's cache-font (s) | ours (s) | ratio |\n"
          "|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"| **all {len(rows)}** | | {totals['lilypond']:.1f} | {totals['ours']:.1f} | "
          f"**{totals['lilypond'] / totals['ours']:.1f}x** |")
    print("\nSVG pages identical (point-and-click links aside) in every piece.\n")
    print("| rasteriser | seconds per page |\n|---|---|")
    for name in ("cairosvg", "librsvg"):
        print(f"| {name} | {totals[name] / totals['pages']:.2f} |")
    print(f"| ratio | **{totals['cairosvg'] / totals['librsvg']:.1f}x** |")


if __name__ == "__main__":
    main()
