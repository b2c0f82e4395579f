"""Benchmark: how the parts and sub-windows were chosen (validation splits only).

    python benchmarks/parts_grid.py --data data/chorales --data data/msmd [--split valid] \
        [--clips 100] [--seconds 5,10,20] [--bank data/chorales]

For each dataset, the split's systems are embedded with their parts at every candidate length
(in systems), and clips cut as `benchmarks/search_quality.py` cuts them (the same seed gives the
same clips) are embedded whole and in sub-windows of every candidate length, once. Every setting
of the grid then ranks the systems from those vectors (`parts.system_scores`): the sets of part
lengths, of sub-window lengths, the weighting of spans by their centre's distance to the clip's
middle (a Gaussian of CENTRE seconds, or none) and MIX. R@1 of the system holding the clip's
midpoint, per dataset and clip length, and the mean of all cells.

Rankings tried beside the chosen setting, printed after the grid:
- piece first: pieces ranked by each span's best match in the piece (weighted mean over spans),
  then the best system of the best piece;
- monotone: the clip's 4.5 s sub-windows aligned in time order to a piece's half-system parts in
  reading order (a step of 0 to 3 snippets between sub-windows), the path's mean similarity
  added (x 0.5) to the piece's best system score;
- hubness (with --bank DIR): every system's and part's similarity lowered by its hubness shift
  (`search/hubness.py`: 0.25 x its mean similarity to its 50 nearest of 2,000 audio windows of
  DIR's training renditions), as indexes keep them since 2026-12-05 where the model has a
  bank; the chosen row then ranks without it.
Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import itertools
from datetime import date

import numpy as np
from _machine import machine  # benchmarks/_machine.py
from search_quality import cut_clips

from scorelink.constants import FPS
from scorelink.data.store import Dataset
from scorelink.evaluate.retrieval import eval_records
from scorelink.search import hubness, parts
from scorelink.search.embed import Embedder

LENGTHS = (0.25, 0.5, 0.75, 1.0, 1.5)  # part lengths tried, in systems
SUBS = (3.6, 4.5, 7.2, 10.8)  # sub-window lengths tried, in seconds
PART_SETS = ((0.5, 1.0), (0.5,), (1.0,), (0.25, 0.5, 1.0), (0.5, 0.75, 1.0), (0.5, 1.0, 1.5),
             LENGTHS)
SUB_SETS = ((4.5, 7.2), (3.6, 4.5, 7.2), (4.5, 7.2, 10.8), SUBS, (4.5,), (7.2,))
CENTRES = (None, 6.0, 3.0)  # seconds; None: spans weigh alike
MIXES = (0.0, 0.25)
BEFORE = ((0.5, 1.0), (4.5, 7.2), None, 0.0)  # the setting before this grid


def _spans(n: int, subs) -> list[tuple[int, int, float]]:
    """(start, end, sub-window seconds; 0 for the whole clip) as `parts.clip_spans` cuts them."""
    out = [(0, n, 0.0)]
    for seconds in subs:
        length = int(seconds * FPS)
        if length < n:
            hop = max(1, int(length * parts.SUB_HOP))
            out += [(a, a + length, seconds) for a in range(0, n - length + 1, hop)]
    return out


def embed(root: str, split: str, n_clips: int, lengths: list[float], embedder, seed: int) -> dict:
    """The split's systems, their parts at every length, and the clips' span vectors."""
    ds = Dataset(root)
    records = eval_records(ds, split=split, tempo=1.0)
    first: dict[tuple[str, int], dict] = {}
    spans: dict[str, list[dict]] = {}
    for r in records:
        first.setdefault((r["piece"], r["system"]), r)
        spans.setdefault(r["piece"], []).append(r)
    keys = sorted(first)
    strips = [ds.strip(first[k]) for k in keys]
    vectors = embedder.sheet_with_halves(np.stack(strips))[0]
    by_piece: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_piece.setdefault(k[0], []).append(i)
    part_sets = {}
    for length in LENGTHS:
        found, owners = [], []
        for ids in by_piece.values():
            snippets, sequences, owner = parts.piece_parts([strips[i] for i in ids],
                                                           lengths=(length,))
            found.append(embedder.sheet_runs(snippets, sequences))
            owners.append(np.array(ids)[owner])
        part_sets[length] = parts.Parts(np.concatenate(found), np.concatenate(owners))
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in lengths:
        for piece, holding, _, spec, _ in cut_clips(ds, spans, seconds, n_clips, rng):
            cut = _spans(spec.shape[1], SUBS)
            clips.append({"seconds": seconds, "truth": keys.index((piece, holding)),
                          "spans": cut, "n": spec.shape[1],
                          "vectors": embedder.audio(spec, [(a, b) for a, b, _ in cut])})
    return {"name": f"{ds.root.name} {split}", "keys": keys, "systems": vectors,
            "parts": part_sets, "clips": clips}


def _best(clip: dict, data: dict, lengths, shift=None) -> np.ndarray:
    """(spans, systems): each span's best similarity among a system's vector and its parts of
    the given lengths (minus shift[...] x the hubness, when given)."""
    own = clip["vectors"] @ data["systems"].T
    if shift is not None:
        own = own - shift["systems"]
    best = own.copy()
    for length in lengths:
        p = data["parts"][length]
        sims = clip["vectors"] @ p.vectors.T
        if shift is not None:
            sims = sims - shift[length]
        for s in range(len(best)):
            np.maximum.at(best[s], p.owner, sims[s])
    return best


def _scores(clip: dict, best: np.ndarray, subs, centre, mix, whole) -> np.ndarray:
    """As `parts.system_scores`: mix x whole (the whole clip's own similarities) + (1 - mix) x
    the mean of `best` over the spans of the given sub-window lengths, weighted by centre."""
    keep = [k for k, (_, _, s) in enumerate(clip["spans"]) if s == 0.0 or s in subs]
    middle = clip["n"] / 2
    w = np.ones(len(keep)) if centre is None else np.exp(-0.5 * (
        (np.array([(clip["spans"][k][0] + clip["spans"][k][1]) / 2 for k in keep]) - middle)
        / (centre * FPS)) ** 2)
    return mix * whole + (1 - mix) * (w @ best[keep]) / w.sum()


def grid(datasets: list[dict]) -> dict:
    """{setting: {(dataset name, seconds): R@1 %}}."""
    out: dict = {}
    for data in datasets:
        for clip in data["clips"]:
            whole = clip["vectors"][0] @ data["systems"].T
            bests = {ps: _best(clip, data, ps) for ps in PART_SETS}
            for ps, ss, centre, mix in itertools.product(PART_SETS, SUB_SETS, CENTRES, MIXES):
                score = _scores(clip, bests[ps], ss, centre, mix, whole)
                hit = int(np.argmax(score) == clip["truth"])
                out.setdefault((ps, ss, centre, mix), {}).setdefault(
                    (data["name"], clip["seconds"]), []).append(hit)
    return {k: {c: 100 * np.mean(v) for c, v in cells.items()} for k, cells in out.items()}


def _monotone(sims: np.ndarray, step: int = 3) -> float:
    """Mean similarity of the best path through (sub-windows, parts in reading order) whose
    part index advances by 0 to `step` from one sub-window to the next."""
    acc = sims[0].copy()
    for row in sims[1:]:
        best = acc.copy()
        for k in range(1, step + 1):
            best[k:] = np.maximum(best[k:], acc[:-k])
        acc = best + row
    return float(acc.max() / len(sims))


def variants(datasets: list[dict], chosen, bank: np.ndarray | None) -> dict:
    """{ranking: {(dataset, seconds): R@1 %}} of the chosen setting and the rankings tried."""
    ps, ss, centre, mix = chosen
    out: dict = {}
    for data in datasets:
        piece_of = np.array([k[0] for k in data["keys"]])
        pieces = sorted(set(piece_of))
        index_of = np.array([pieces.index(p) for p in piece_of])
        half = data["parts"][0.5]
        blocks = {p: np.flatnonzero(piece_of[half.owner] == p) for p in pieces}
        shift = None
        if bank is not None:  # as indexes keep them (search/hubness.py)
            shift = {"systems": hubness.shifts(bank, data["systems"]),
                     **{length: hubness.shifts(bank, data["parts"][length].vectors)
                        for length in ps}}
        for clip in data["clips"]:
            cell = (data["name"], clip["seconds"])
            whole = clip["vectors"][0] @ data["systems"].T
            best = _best(clip, data, ps)
            score = _scores(clip, best, ss, centre, mix, whole)
            answers = {"chosen": int(np.argmax(score))}
            by_piece = np.full((len(best), len(pieces)), -np.inf)
            for s in range(len(best)):
                np.maximum.at(by_piece[s], index_of, best[s])
            piece_whole = np.full(len(pieces), -np.inf)
            np.maximum.at(piece_whole, index_of, whole)
            piece_score = _scores(clip, by_piece, ss, centre, mix, piece_whole)
            top_piece = int(np.argmax(piece_score))
            answers["piece first"] = int(np.argmax(np.where(index_of == top_piece, score,
                                                            -np.inf)))
            windows = sorted((k for k, (_, _, s) in enumerate(clip["spans"]) if s == 4.5),
                             key=lambda k: clip["spans"][k][0])
            if len(windows) >= 2:
                sims = clip["vectors"][windows] @ half.vectors.T
                top = np.argsort(-score)[:200]
                combined = {p: max(score[i] for i in top if piece_of[i] == p)
                            + 0.5 * _monotone(sims[:, blocks[p]]) for p in set(piece_of[top])}
                p = max(combined, key=combined.get)
                answers["monotone"] = max((i for i in top if piece_of[i] == p),
                                          key=lambda i: score[i])
            else:
                answers["monotone"] = answers["chosen"]
            if shift is not None:
                answers["hubness"] = int(np.argmax(_scores(
                    clip, _best(clip, data, ps, shift), ss, centre, mix,
                    whole - shift["systems"])))
            for name, answer in answers.items():
                out.setdefault(name, {}).setdefault(cell, []).append(answer == clip["truth"])
    return {k: {c: 100 * np.mean(v) for c, v in cells.items()} for k, cells in out.items()}


def _name(setting) -> str:
    ps, ss, centre, mix = setting
    return (f"parts {'/'.join(f'{x:g}' for x in ps)}; sub-windows "
            f"{'/'.join(f'{x:g}' for x in ss)} s; centre "
            f"{'none' if centre is None else f'{centre:g} s'}; MIX {mix:g}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", action="append", required=True, help="a dataset (repeatable)")
    p.add_argument("--split", default="valid")
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--clips", type=int, default=100, help="clips per length and dataset")
    p.add_argument("--seconds", default="5,10,20")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bank", metavar="DIR", help="a dataset whose training renditions make "
                   "the audio bank of the hubness ranking")
    p.add_argument("--top", type=int, default=10, help="grid rows printed")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    embedder = Embedder.load(args.checkpoint)
    lengths = [float(s) for s in args.seconds.split(",")]
    datasets = [embed(d, args.split, args.clips, lengths, embedder, args.seed)
                for d in args.data]
    results = grid(datasets)
    cells = [(d["name"], s) for d in datasets for s in lengths]

    def row(name: str, r: dict) -> str:
        return (f"| {name} | " + " | ".join(f"{r[c]:.0f}" for c in cells)
                + f" | {np.mean([r[c] for c in cells]):.1f} |")

    ranked = sorted(results, key=lambda k: -np.mean(list(results[k].values())))
    chosen = (parts.PART_SYSTEMS, parts.SUB_SECONDS, parts.CENTRE_SECONDS, parts.MIX)
    print(f"### Parts and sub-windows on {args.split} clips ({date.today()})\n")
    print(f"- machine: {machine()}; model {embedder.name} ({embedder.fingerprint[:16]})")
    print(f"- `python benchmarks/parts_grid.py {' '.join(f'--data {d}' for d in args.data)} "
          f"--split {args.split} --clips {args.clips} --seconds {args.seconds}"
          + (f" --bank {args.bank}" if args.bank else "") + "`")
    print(f"- {len(results)} settings; R@1 % of the system holding the clip's midpoint\n")
    print("| setting | " + " | ".join(f"{n} {s:g} s" for n, s in cells) + " | mean |")
    print("|---|" + "---|" * (len(cells) + 1))
    for k in ranked[: args.top]:
        print(row(_name(k), results[k]))
    with_mix = (*chosen[:3], MIXES[1])
    for label, k in (("before", BEFORE), ("shipped (parts.py)", chosen),
                     (f"shipped, MIX {MIXES[1]:g}", with_mix)):
        if k in results:
            print(row(f"{label}: {_name(k)}", results[k]))
    names = [d["name"] for d in datasets]
    pairs = [(k, n) for k in results if k[3] == MIXES[0] for n in names]
    above = sum(np.mean([results[(*k[:3], MIXES[1])][(n, s)] for s in lengths])
                > np.mean([results[k][(n, s)] for s in lengths]) for k, n in pairs)
    print(f"\nMIX {MIXES[1]:g} above MIX {MIXES[0]:g} (mean over the clip lengths): {above} of "
          f"{len(pairs)} settings and datasets.")
    bank = hubness.build_bank(args.bank, embedder) if args.bank else None
    print("\nThe shipped setting and the rankings tried beside it:\n")
    print("| ranking | " + " | ".join(f"{n} {s:g} s" for n, s in cells) + " | mean |")
    print("|---|" + "---|" * (len(cells) + 1))
    for name, r in variants(datasets, chosen, bank).items():
        print(row(name, r))


if __name__ == "__main__":
    main()
