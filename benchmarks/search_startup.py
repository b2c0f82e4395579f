"""Benchmark: how long one `scorelink search --audio` call takes, start-up included.

    scorelink demo --out demo                      # or any index made by `scorelink index`
    python benchmarks/search_startup.py --index demo/index [--repeats 5]

Runs the real command in a fresh process, `--repeats` times for each way of embedding the
query: with the model the index keeps in NumPy (`model.npz`, the default since it exists),
and with the PyTorch checkpoint (`--checkpoint`, how every search ran before). A bare
`python -c pass` gives the interpreter's own start. Wall time and CPU time (user + system of
the child) per call; on a shared machine the CPU time is the steadier figure, and the load
average is printed beside it. Both ways must give the same answers. Prints a Markdown block
for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py


def _run(command: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _checkpoint_of(index: Path) -> str:
    """The --checkpoint that names the index's own model (a shipped name or a path)."""
    from scorelink import checkpoint

    name = json.loads((index / "index.json").read_text())["model"]["name"]
    if name.startswith("shipped:"):
        file = name.removeprefix("shipped:")
        return next(k for k, v in checkpoint.SHIPPED_MODELS.items() if v == file)
    return name


def _query_audio(index: Path) -> str:
    """An indexed recording whose file still exists (the first one)."""
    import sqlite3

    gen = json.loads((index / "index.json").read_text())["generation"]
    with sqlite3.connect(index / f"meta-{gen}.sqlite") as db:
        paths = [p for (p,) in db.execute("SELECT DISTINCT audio_path FROM windows ORDER BY id")]
    found = next((p for p in paths if p and Path(p).is_file()), None)
    if found is None:
        sys.exit(f"{index} names no audio file that exists; give one with --audio")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default="demo/index", help="an index folder (default demo/index)")
    ap.add_argument("--audio", help="query recording (default: the index's first recording)")
    ap.add_argument("--start", type=float, default=2.0)
    ap.add_argument("--end", type=float, default=12.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    index = Path(args.index)
    if not (index / "model.npz").is_file():
        sys.exit(f"{index} keeps no model.npz (made before it was written): index it anew")
    audio = args.audio or _query_audio(index)
    search = [sys.executable, "-m", "scorelink", "search", "--index", str(index),
              "--audio", audio, "--start", str(args.start), "--end", str(args.end), "--json"]
    modes = {"python -c pass (interpreter only)": [sys.executable, "-c", "pass"],
             "search, NumPy model (index's model.npz)": search,
             "search, PyTorch model (--checkpoint)": search + ["--checkpoint",
                                                             _checkpoint_of(index)]}
    load_before = os.getloadavg()[0]
    results, answers = {}, {}
    for _ in range(args.repeats):  # interleaved, so that a change of load hits every mode
        for mode, command in modes.items():
            wall, cpu, out = _run(command)
            results.setdefault(mode, []).append((wall, cpu))
            if out:
                answers[mode] = [(r["piece"], r["page"], r["system"])
                                 for r in json.loads(out)["results"]]
    load_after = os.getloadavg()[0]
    first, *others = answers.values()
    same = all(a == first for a in others)

    print(f"{date.today().isoformat()}, {machine()}, load average {load_before:.1f} before, "
          f"{load_after:.1f} after.\n")
    print(f"    python benchmarks/search_startup.py --index {args.index} "
          f"--repeats {args.repeats}\n")
    print(f"Query: {Path(audio).name}, {args.start:g}-{args.end:g} s; "
          f"{args.repeats} runs of each, interleaved.\n")
    print("| call | wall median (s) | wall min (s) | CPU median (s) |")
    print("|---|---|---|---|")
    for mode, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"| {mode} | {statistics.median(walls):.2f} | {min(walls):.2f} | "
              f"{statistics.median(cpus):.2f} |")
    print(f"\nSame answers both ways: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
