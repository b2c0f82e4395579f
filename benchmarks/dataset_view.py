"""A view of a built dataset restricted to some of its pieces: a new folder whose manifest holds
only their records (optionally relabelled to one split) and whose `pieces/` links to the
original's, so nothing is copied.

    python benchmarks/dataset_view.py --data data/beethoven --out data/beethoven-hold \
        --sonatas sonata04,sonata09 --splits train --with-split valid --as-split valid
    python benchmarks/dataset_view.py --data data/beethoven --out data/beethoven-rest \
        --sonatas sonata04,sonata09 --drop --splits train

Used to hold some training pieces out of a run and judge it on them together with the
validation pieces (docs/reader.md: the note reader's real-scan training). `--sonatas` takes
piece-name prefixes (the real-scan corpus's pieces are `sonataNN-M`, split by sonata).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--sonatas", required=True, help="comma-separated piece-name prefixes")
    p.add_argument("--drop", action="store_true", help="keep every piece but these")
    p.add_argument("--splits", default="train,valid,test", help="keep records of these splits")
    p.add_argument("--with-split", help="also keep every record of this split")
    p.add_argument("--as-split", help="relabel every kept record to this split")
    args = p.parse_args()

    src, out = Path(args.data), Path(args.out)
    prefixes = tuple(args.sonatas.split(","))
    splits = set(args.splits.split(","))
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset.json").write_text((src / "dataset.json").read_text())
    if not (out / "pieces").exists():
        os.symlink((src / "pieces").resolve(), out / "pieces")
    kept, pieces = 0, set()
    with open(src / "manifest.jsonl") as f, open(out / "manifest.jsonl", "w") as g:
        for line in f:
            r = json.loads(line)
            chosen = r["split"] in splits and r["piece"].startswith(prefixes) != args.drop
            if not chosen and r["split"] != args.with_split:
                continue
            if args.as_split:
                r["split"] = args.as_split
            g.write(json.dumps(r) + "\n")
            kept, pieces = kept + 1, pieces | {r["piece"]}
    print(f"{out}: {kept} records of {len(pieces)} pieces")


if __name__ == "__main__":
    main()
