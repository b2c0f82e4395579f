"""Benchmark: query latency against 10k / 100k / 1M indexed passages, indexing throughput, and
the peak memory of `scorelink serve` with a 100k index.

    python benchmarks/search_speed.py --data data/chorales [--checkpoint CKPT] [--pages DIR]
    python benchmarks/search_speed.py --data data/chorales --notes-only [--read]

Notes (symbolic scores): a 10 s clip against 1,000 and 10,000 systems that keep notes (made-up
chords, about 10 s a system, 20 systems a piece) and parts (PARTS_PER_SYSTEM synthetic vectors
each): embedding of the clip and its sub-windows + FAISS (systems and parts) + the parts'
scores + chroma shingles + DTW on the candidates + fusion. The first query builds the score
chroma and shingles (timed apart). --read: the systems as scans with read noteheads in place
of notes (the same made-up chords, at 78 px a second: `search/reading.py`), aligned at the
timeline's three scales; --jumps P|off sets the penalty of the timeline's jumps back to a
piece's opening for the run (`reading.READ_JUMPS`; default: as shipped).

Latency: a 20 s audio clip from the dataset's test recordings, spectrogram + embedding + FAISS
search (+ metadata lookup), p50 and p95 over repeated queries. The size sweep fills the sheet
side with synthetic unit vectors (the search cost does not depend on what they encode); the
exact (flat) index is measured at every size, the approximate (HNSW) one at the largest.
Indexing: page images (systems found on the page) per minute, and hours of audio per minute.
Prints a Markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink.search import collect, confidence, query
from scorelink.search.embed import Embedder
from scorelink.search.index import Index, Pending
from scorelink.search.recordings import read_audio


def _synthetic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _synthetic_index(root: Path, embedder: Embedder, n: int, *, kind: str = "flat") -> Index:
    rows = [{"piece": f"synthetic-{i // 20}", "page": (i % 20) // 5, "system": i % 5,
             "top": 100.0, "left": 40.0, "bottom": 200.0, "right": 800.0,
             "page_image": "pages/none.png", "source": "synthetic"} for i in range(n)]
    windows = [{"recording": f"synthetic-{i // 50}", "start": float(i % 50),
                "end": float(i % 50 + 10), "source": "synthetic"} for i in range(n)]
    pending = Pending()
    pending.add_systems(rows, _synthetic(n, embedder.dim, 1))
    pending.add_windows(windows, _synthetic(n, embedder.dim, 2))
    return Index.write(root, pending, model_name=embedder.name,
                       fingerprint=embedder.fingerprint, dim=embedder.dim, kind=kind)


def _latency(index: Index, embedder: Embedder, clip: np.ndarray, repeats: int) -> tuple:
    query.search_audio(index, embedder, clip, top=10)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        query.search_audio(index, embedder, clip, top=10)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


PARTS_PER_SYSTEM = 24  # about what `scorelink index` keeps (MSMD test: 17,576 for 729 systems)


def _notes_index(root: Path, embedder: Embedder, n: int, seed: int = 0, *,
                 read: bool = False) -> Index:
    """n systems with synthetic vectors and parts, and made-up notes (chords every 0.25-1 s,
    ~10 s each)."""
    rng = np.random.default_rng(seed)
    rows, notes = [], []
    for i in range(n):
        rows.append({"piece": f"synthetic-{i // 20}", "page": (i % 20) // 5, "system": i % 5,
                     "top": 100.0, "left": 40.0, "bottom": 200.0, "right": 800.0,
                     "page_image": "pages/none.png", "source": "synthetic"})
        t0 = (i % 20) * 10.0
        lengths = rng.choice([0.25, 0.5, 1.0], size=20)
        onsets = t0 + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        onsets, lengths = onsets[onsets < t0 + 10], lengths[onsets < t0 + 10]
        chords = rng.integers(36, 84, size=(len(onsets), 3))
        notes.append(np.stack([np.repeat(onsets, 3), np.repeat(onsets + lengths, 3),
                               chords.ravel()], axis=1))
    pending = Pending()
    parts = _synthetic(n * PARTS_PER_SYSTEM, embedder.dim, 3).reshape(n, PARTS_PER_SYSTEM, -1)
    if read:  # the same chords as noteheads along x (px from the system's start)
        from scorelink.search.reading import PX_PER_SECOND

        heads = [np.stack([(c[:, 0] - c[0, 0]) * PX_PER_SECOND + 50, c[:, 2]], axis=1)
                 for c in notes]
        pending.add_systems(rows, _synthetic(n, embedder.dim, 1), parts=list(parts),
                            heads=heads)
    else:
        pending.add_systems(rows, _synthetic(n, embedder.dim, 1), notes, parts=list(parts))
    return Index.write(root, pending, model_name=embedder.name,
                       fingerprint=embedder.fingerprint, dim=embedder.dim)


def _notes_latency(work: Path, embedder: Embedder, clip: np.ndarray, sizes: list[int],
                   repeats: int, *, read: bool = False) -> list[tuple]:
    out = []
    for n in sizes:
        index = _notes_index(work / f"notes-{n}", embedder, n, read=read)
        t0 = time.perf_counter()
        for matcher in index.read_matchers() if read else [index.note_matcher()]:
            matcher.candidates(np.ones((12, 100), np.float32))  # builds shingles
        build = time.perf_counter() - t0
        query.search_audio(index, embedder, clip, top=10)  # warm-up
        wall, cpu, judged = [], [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            query.search_audio(index, embedder, clip, top=10)
            wall.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
        for _ in range(repeats):  # what `search --audio` does: the answers and their verdict
            t0 = time.perf_counter()
            confidence.search_audio(index, embedder, clip, top=10)
            judged.append(1000 * (time.perf_counter() - t0))
        out.append((n, build, *np.percentile(wall, [50, 95]), *np.percentile(cpu, [50, 95]),
                    *np.percentile(judged, [50, 95])))
        index.close()
    return out


def _serve_memory(index_root: Path, checkpoint: str | None, clip_path: Path) -> float:
    """Peak RSS (MB) of `scorelink serve` on the index after a few queries."""
    port = 8765
    cmd = [sys.executable, "-m", "scorelink", "serve", "--index", str(index_root),
           "--port", str(port)] + (["--checkpoint", checkpoint] if checkpoint else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        body, boundary = clip_path.read_bytes(), "scorelinkbench"
        data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode() + body \
            + f"\r\n--{boundary}--\r\n".encode()
        for _ in range(5):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/search/audio", data=data,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            urllib.request.urlopen(req, timeout=60).read()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    import soundfile

    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="a dataset folder with test audio (FLAC)")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--pages", help="a folder of page images to time indexing on "
                   "(default: the dataset's test pages)")
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--notes-sizes", default="1000,10000")
    p.add_argument("--notes-only", action="store_true", help="only the symbolic-score sweep")
    p.add_argument("--read", action="store_true",
                   help="that sweep with read noteheads (scans) in place of notes")
    p.add_argument("--jumps", metavar="P|off",
                   help="with --read: reading.READ_JUMPS for the run (default: as shipped)")
    args = p.parse_args()
    if args.jumps is not None:
        from scorelink.search import reading

        reading.READ_JUMPS = None if args.jumps == "off" else float(args.jumps)
    embedder = Embedder.load(args.checkpoint)
    flacs = sorted(Path(args.data).rglob("musescore-grand@1.00.flac"))
    audio = np.concatenate([read_audio(f) for f in flacs[:4]])
    clip = audio[: 20 * 22050]
    work = Path(tempfile.mkdtemp(prefix="scorelink-bench-"))
    clip_path = work / "clip.wav"
    soundfile.write(clip_path, clip, 22050)

    notes_sizes = [int(s) for s in args.notes_sizes.split(",") if s]
    notes_rows = _notes_latency(work, embedder, audio[: 10 * 22050], notes_sizes, args.repeats,
                                read=args.read)
    print(f"### Search with {'read notes (scans)' if args.read else 'notes'} ({date.today()})\n")
    print(f"- machine: {machine()}; model {embedder.name}; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"- `python benchmarks/search_speed.py --data {args.data}"
          + (" --notes-only" if args.notes_only else "") + (" --read" if args.read else "")
          + (f" --jumps {args.jumps}" if args.jumps is not None else "") + "`\n")
    print(f"| systems with {'read notes' if args.read else 'notes'} | first query builds (s) | "
          "p50 (ms) | p95 (ms) | CPU p50 (ms) | CPU p95 (ms) | with the verdict: p50 (ms) | "
          "p95 (ms) |\n|---|---|---|---|---|---|---|---|")
    for n, build, p50, p95, c50, c95, v50, v95 in notes_rows:
        print(f"| {n:,} | {build:.1f} | {p50:.0f} | {p95:.0f} | {c50:.0f} | {c95:.0f} | "
              f"{v50:.0f} | {v95:.0f} |")
    print(f"\nQuery: a 10 s clip, spectrogram + embedding (with sub-windows) + FAISS (systems "
          f"and {PARTS_PER_SYSTEM} parts a system) + chroma shingles + DTW on the candidates + "
          f"fusion, {args.repeats} repeats; wall-clock and this process's CPU "
          f"time (one thread: on an idle machine the two agree). With the verdict: the same "
          f"and the no-match confidence (`confidence.search_audio`, what `search --audio` "
          f"runs: the features of the judging calibration, here the notes' or read notes', "
          f"whose reverse gap aligns the clip played backwards).\n")
    if args.notes_only:
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        index = _synthetic_index(work / f"flat-{n}", embedder, n)
        rows.append(("flat (exact)", n, *_latency(index, embedder, clip, args.repeats)))
        index.close()
    t0 = time.perf_counter()
    hnsw = _synthetic_index(work / f"hnsw-{sizes[-1]}", embedder, sizes[-1], kind="hnsw")
    hnsw_build = time.perf_counter() - t0
    rows.append(("hnsw (approximate)", sizes[-1], *_latency(hnsw, embedder, clip, args.repeats)))
    hnsw.close()

    # indexing throughput: page images, and audio
    pages = sorted(Path(args.pages).glob("*.png")) if args.pages else sorted(
        Path(args.data).rglob("pages/page-*.png"))[:60]
    t0 = time.perf_counter()
    n_systems = len(collect.from_scores(pages, embedder).systems)
    page_rate = len(pages) / (time.perf_counter() - t0) * 60
    t0 = time.perf_counter()
    n_windows = len(collect.from_recordings(flacs, embedder).windows)
    seconds = time.perf_counter() - t0
    hours = sum(soundfile.info(f).duration for f in flacs) / 3600
    serve_mb = _serve_memory(work / f"flat-{sizes[1] if len(sizes) > 1 else sizes[0]}",
                             args.checkpoint, clip_path)

    print(f"### Search ({date.today()})\n")
    print(f"- machine: {machine()}; model {embedder.name} ({embedder.dim}-d)")
    print(f"- `python benchmarks/search_speed.py --data {args.data}`\n")
    print("| index | passages | p50 (ms) | p95 (ms) |\n|---|---|---|---|")
    for kind, n, p50, p95 in rows:
        print(f"| {kind} | {n:,} | {p50:.0f} | {p95:.0f} |")
    print(f"\nQuery: a 20 s audio clip, spectrogram + embedding (bf16) + search + metadata, "
          f"{args.repeats} repeats. Building the {sizes[-1]:,}-vector HNSW index took "
          f"{hnsw_build:.0f} s.\n")
    print(f"- indexing page images: {page_rate:.0f} pages/min ({len(pages)} pages, "
          f"{n_systems} systems found on them)")
    print(f"- indexing audio: {hours / (seconds / 60):.2f} audio hours per minute "
          f"({hours * 60:.0f} min of audio in {seconds:.0f} s, {n_windows} windows)")
    print(f"- peak memory of `scorelink serve` with a {sizes[1]:,}-passage index "
          f"(after 5 queries): {serve_mb:.0f} MB")


if __name__ == "__main__":
    main()
