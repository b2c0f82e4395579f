"""Benchmark: search quality as a user meets it, on whole recordings rather than cut passages.

    python benchmarks/search_quality.py --data data/chorales [--checkpoint CKPT]

The index holds the test split's systems (sheet side) and its held-out-timbre recordings at
tempo 1.0, cut into windows exactly as `scorelink index --recordings` cuts any recording (audio
side): nothing of the alignment is given to the index. The dataset's system spans are used
only to score the answers.

- audio -> sheet: clips of 5, 10 and 20 s from random places of the recordings. An answer is
  correct when it is a system that sounds during the clip (overlaps it by 0.5 s or more).
- sheet -> audio: every test system as a query. An answer (a window) is correct when it lies
  in that piece's recording and overlaps a span where the system sounds by at least half of
  the shorter of the two.

R@k: the share of queries with a correct answer among the first k; MRR over the first correct
answer; "piece R@1": the best answer is from the right piece. Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.constants import SAMPLE_RATE
from scorelink.data.store import Dataset
from scorelink.evaluate.retrieval import eval_records
from scorelink.search import collect, query
from scorelink.search.embed import Embedder
from scorelink.search.index import Index, Pending
from scorelink.search.recordings import read_audio

KS = (1, 5, 10)
MIN_OVERLAP = 0.5  # s, audio -> sheet: a system sounding this long in the clip is correct


def _summary(first_correct: list[int | None], piece_hits: list[bool]) -> dict:
    ranks = np.array([r if r is not None else np.inf for r in first_correct], dtype=float)
    out = {f"R@{k}": 100 * float(np.mean(ranks <= k)) for k in KS}
    out["MRR"] = float(np.mean(1 / ranks))
    out["piece R@1"] = 100 * float(np.mean(piece_hits))
    out["queries"] = len(first_correct)
    return out


def _first(hits: list[dict], correct) -> int | None:
    return next((h["rank"] for h in hits if correct(h)), None)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="a dataset folder with test audio (FLAC)")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--clips", type=int, default=200, help="audio clips per length")
    p.add_argument("--seconds", default="5,10,20", help="audio clip lengths")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    embedder = Embedder.load(args.checkpoint)
    ds = Dataset(args.data)
    records = eval_records(ds, split="test", tempo=1.0)
    spans: dict[str, list[dict]] = {}  # piece -> its system occurrences (start, end in s)
    for r in records:
        spans.setdefault(r["piece"], []).append(r)
    flacs = {}
    for piece, group in spans.items():
        flac = Path(ds.root) / "pieces" / piece / f"{group[0]['rendition']}.flac"
        if flac.exists():
            flacs[str(flac.resolve())] = piece
    if not flacs:
        raise SystemExit(f"{args.data} keeps no test audio (build it with --keep-audio test)")

    t0 = time.perf_counter()
    systems = collect.from_dataset(args.data, embedder)
    pending = Pending(systems.systems, systems.system_vectors, pages=systems.pages)
    recordings = collect.from_recordings(sorted(flacs), embedder)
    pending.windows, pending.window_vectors = recordings.windows, recordings.window_vectors
    work = Path(tempfile.mkdtemp(prefix="scorelink-quality-"))
    index = Index.write(work / "idx", pending, model_name=embedder.name,
                        fingerprint=embedder.fingerprint, dim=embedder.dim)
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    audio = {path: read_audio(path) for path in flacs}
    a2s = {}
    for seconds in [float(s) for s in args.seconds.split(",")]:
        length = int(seconds * SAMPLE_RATE)
        usable = [path for path, x in audio.items() if len(x) >= length]
        first, piece_hits = [], []
        for _ in range(args.clips):
            path = usable[rng.integers(len(usable))]
            start = int(rng.integers(len(audio[path]) - length + 1))
            a, b = start / SAMPLE_RATE, start / SAMPLE_RATE + seconds
            piece = flacs[path]
            sounding = {s["system"] for s in spans[piece]
                        if min(b, s["end"]) - max(a, s["start"]) >= MIN_OVERLAP}
            hits = query.search_audio(index, embedder, audio[path][start:start + length],
                                      top=max(KS))
            first.append(_first(hits, lambda h, p=piece, ok=sounding: h["piece"] == p
                                and h["system"] - 1 in ok))  # answers count from 1
            piece_hits.append(bool(hits) and hits[0]["piece"] == piece)
        a2s[seconds] = _summary(first, piece_hits)

    first, piece_hits = [], []
    seen = set()
    for r in records:
        if (r["piece"], r["system"]) in seen:
            continue
        seen.add((r["piece"], r["system"]))
        occurrences = [s for s in spans[r["piece"]] if s["system"] == r["system"]]
        hits = query.search_sheet(index, embedder, ds.strip(r), top=max(KS))

        def correct(h, piece=r["piece"], occ=occurrences):
            if flacs.get(h["audio_path"]) != piece:
                return False
            return any(min(h["end"], s["end"]) - max(h["start"], s["start"])
                       >= 0.5 * min(h["end"] - h["start"], s["end"] - s["start"]) for s in occ)

        first.append(_first(hits, correct))
        piece_hits.append(bool(hits) and flacs.get(hits[0]["audio_path"]) == r["piece"])
    s2a = _summary(first, piece_hits)

    minutes = sum(len(x) for x in audio.values()) / SAMPLE_RATE / 60
    print(f"### Search quality on whole recordings ({date.today()})\n")
    print(f"- machine: {machine()}; model {embedder.name}")
    print(f"- `python benchmarks/search_quality.py --data {args.data}"
          + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "") + "`")
    print(f"- index: {index.sheet.ntotal} systems of {len(spans)} test pieces, "
          f"{index.audio.ntotal} windows of {len(flacs)} recordings ({minutes:.0f} min, "
          f"held-out piano timbre, tempo 1.0); built in {build_s:.0f} s\n")
    print("| query | queries | R@1 | R@5 | R@10 | MRR | piece R@1 |\n|---|---|---|---|---|---|---|")
    for seconds, m in a2s.items():
        print(f"| audio clip {seconds:g} s -> system | {m['queries']} | {m['R@1']:.1f} | "
              f"{m['R@5']:.1f} | {m['R@10']:.1f} | {m['MRR']:.3f} | {m['piece R@1']:.1f} |")
    print(f"| system -> recording place | {s2a['queries']} | {s2a['R@1']:.1f} | "
          f"{s2a['R@5']:.1f} | {s2a['R@10']:.1f} | {s2a['MRR']:.3f} | {s2a['piece R@1']:.1f} |")
    index.close()


if __name__ == "__main__":
    main()
