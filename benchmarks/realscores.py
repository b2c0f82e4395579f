"""Numbers of docs/realscores.md: scans vs kern, the note check, and the shipped model before
and after scan normalisation.

    python benchmarks/realscores.py counts --beethoven-dir ../shared/data/beethoven [MOVEMENT ...]
    python benchmarks/realscores.py checks DIR
    python benchmarks/realscores.py alignments --beethoven-dir ../shared/data/beethoven
    python benchmarks/realscores.py evaluate DIR [--checkpoint CKPT] [--pairs 534]
        [--as-built-only] [--json OUT]
    python benchmarks/realscores.py figure PDF PAGE OUT.png
    python benchmarks/realscores.py robustness --beethoven-dir ../shared/data/beethoven

`counts`: systems found on every scan (normalised pages, two staves per system) against the
kern's systems, movement by movement (or only those named: `sonata08-3 sonata12-1`); no audio,
no alignment. `robustness`: pages of the scans made unlike themselves (turned, printed
smaller, scanned at 3x the resolution, on grey paper with a black border and specks, 1-bit at
3x) and read from PNG files: are the same systems found? `checks`: the note check over the
built passages. `evaluate`: the test split in the paper's Table 2 layout (534 passages drawn
at random, and all), on the dataset as built (normalised scans) and on a copy whose strips are
cut from the pages as read (no normalisation; same systems, same audio).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
from _machine import machine


def counts(root: Path, only: list[str] | None = None) -> dict:
    from scorelink.data.beethoven import systems_on_scan
    from scorelink.data.humdrum import read_kern
    from scorelink.search.pages import load_pages
    from scorelink.search.staves import find_systems

    rows = {}
    for kern_path in sorted((root / "kern").glob("*.krn")):
        if only and kern_path.stem not in only:
            continue
        kern = read_kern(kern_path)
        pages = load_pages(root / "pdf" / f"{kern_path.stem}.pdf")
        found = [len(find_systems(p, staves_per_system=kern.staves)) for p in pages]
        # a scan that holds the next movement too agrees when it shows both movements' systems
        agrees = sum(found) == systems_on_scan(f"{kern_path.stem}.pdf", kern.systems)
        rows[kern_path.stem] = {"kern": kern.systems, "scan": sum(found), "per_page": found,
                                "agrees": agrees}
        print(kern_path.stem, kern.systems, sum(found), found, flush=True)
    agree = [r for r in rows.values() if r["agrees"]]
    total = sum(r["kern"] for r in rows.values())
    print(f"movements agreeing: {len(agree)} of {len(rows)}; systems in them: "
          f"{sum(r['kern'] for r in agree)} of {total} "
          f"({100 * sum(r['kern'] for r in agree) / total:.1f} %)")
    return rows


def checks(data: Path) -> None:
    from scorelink.data.store import Dataset

    ds = Dataset(data)
    scores = np.array([r["note_check"] for r in ds])
    print(f"passages {len(scores)}, note check >= 0.8: {100 * np.mean(scores >= 0.8):.1f} %, "
          f"median F {np.median(scores):.3f}, below 0.5: {np.sum(scores < 0.5)}")
    for split in ("train", "valid", "test"):
        s = np.array([r["note_check"] for r in ds.records(split=split)])
        if len(s):
            print(f"  {split}: {len(s)} passages, {100 * np.mean(s >= 0.8):.1f} % pass")


def alignments(root: Path) -> None:
    """The note check of every performance of the corpus (no audio, no scans): the alignment
    alone, movement by movement, with running totals."""
    from scorelink.data.beethoven import performances
    from scorelink.data.humdrum import read_kern
    from scorelink.data.performance import (
        align_bars,
        note_check,
        read_downbeats,
        read_midi,
        system_spans,
    )

    scores, failed, done = [], [], 0
    for kern_path in sorted((root / "kern").glob("*.krn")):
        kern = read_kern(kern_path)
        for perf in performances(root, kern_path.stem):
            try:
                notes = read_midi(perf.midi)
                alignment = align_bars(kern, notes, read_downbeats(perf.annotations))
            except Exception as exc:  # noqa: BLE001 - listed, the count goes on
                failed.append((kern_path.stem, perf.name, str(exc)))
                continue
            mine = [note_check(kern, notes, s) for s in system_spans(kern, alignment)]
            scores.extend(mine)
            done += 1
            low = sum(v < 0.8 for v in mine)
            print(f"{kern_path.stem} {perf.name}: {alignment.scheme}, cost "
                  f"{alignment.cost:.3f}, {len(mine)} passages, {low} below 0.8", flush=True)
        s = np.array(scores)
        print(f"  so far: {done} performances, {len(s)} passages, "
              f"{100 * np.mean(s >= 0.8):.1f} % pass, median {np.median(s):.3f}, "
              f"failed {len(failed)}", flush=True)
    for f in failed:
        print("failed:", *f)


def unnormalised_copy(data: Path, out: Path) -> None:
    """A copy of the dataset (links) whose strips are cut from the scans as read."""
    from scorelink.search.pages import load_pages, system_strips
    from scorelink.search.staves import SystemBox

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for item in data.iterdir():
        if item.name != "pieces":
            os.symlink(item.resolve(), out / item.name)
    for piece in sorted((data / "pieces").iterdir()):
        if not (piece / "piece.json").exists():
            continue
        (out / "pieces" / piece.name).mkdir(parents=True)
        for item in piece.iterdir():
            if item.name != "strips.npy":
                os.symlink(item.resolve(), out / "pieces" / piece.name / item.name)
        info = json.loads((piece / "piece.json").read_text())
        pages = load_pages(info["scan"], normalise=False)
        fields = SystemBox.__dataclass_fields__
        strips = []
        for p, page in enumerate(pages):
            boxes = [SystemBox(**{k: v for k, v in s.items() if k in fields})
                     for s in info["systems"] if s["page"] == p]
            if boxes:
                strips.append(system_strips(page, boxes))
        np.save(out / "pieces" / piece.name / "strips.npy", np.concatenate(strips))


def evaluate(data: Path, checkpoint: str | None, pairs: int, seed: int) -> dict:
    """Table 2 row II: `pairs` test passages drawn at random (seed), and all of them.

    Every passage is embedded once; the drawn pairs are ranked among themselves from those
    embeddings (the same numbers as embedding them again: one passage's embedding does not
    depend on its batch)."""
    from scorelink import checkpoint as ckpt
    from scorelink.data.store import Dataset
    from scorelink.evaluate.metrics import bootstrap_intervals, retrieval_metrics
    from scorelink.evaluate.retrieval import (
        embed,
        eval_records,
        query_pieces,
        rank_passages,
        rank_records,
    )

    model, _ = ckpt.load_model(checkpoint)
    records = eval_records(Dataset(data), split="test")
    rng = np.random.default_rng(seed)
    drawn = sorted(rng.choice(len(records), min(pairs, len(records)), replace=False))
    if getattr(model, "kind", "rnn") == "snippet":  # votes: no passage embeddings to share
        ranked = {"drawn": rank_records(model, data, [records[i] for i in drawn]),
                  "all": rank_records(model, data, records)}
    else:
        sheet, audio = embed(model, data, records)
        keys = [(r["piece"], r["system"]) for r in records]
        ranked = {"drawn": rank_passages(sheet[drawn], audio[drawn], [keys[i] for i in drawn]),
                  "all": rank_passages(sheet, audio, keys)}
    out = {"checkpoint": checkpoint or "shipped default", "pairs": pairs, "seed": seed}
    for name, subset in (("drawn", [records[i] for i in drawn]), ("all", records)):
        ranks, pieces = ranked[name], query_pieces(subset)
        out[name] = {d: {**retrieval_metrics(ranks[d]), "queries": len(ranks[d]),
                         "pieces": len(set(pieces[d])),
                         "ci95": bootstrap_intervals(ranks[d], pieces[d])}
                     for d in ("a2s", "s2a")}
        for d in ("a2s", "s2a"):  # each movement alone (ranked among all candidates)
            of = np.array(pieces[d])
            out[name][d]["by_piece"] = {p: {"MRR": float(np.mean(1 / ranks[d][of == p])),
                                            "queries": int(np.sum(of == p))}
                                        for p in sorted(set(pieces[d]))}
        label = f"{len(subset)} drawn" if name == "drawn" else "all"
        for d in ("a2s", "s2a"):
            m = out[name][d]
            ci = m["ci95"]["MRR"]
            print(f"{label:>10} {d}: R@1 {m['R@1']:.1f} % R@10 {m['R@10']:.1f} % "
                  f"R@25 {m['R@25']:.1f} % MRR {m['MRR']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
                  f"MR {m['MR']:.0f} ({m['queries']} queries)", flush=True)
    for p in out["all"]["a2s"]["by_piece"]:
        a, b = out["all"]["a2s"]["by_piece"][p], out["all"]["s2a"]["by_piece"][p]
        print(f"{p:>12}: MRR A2S {a['MRR']:.3f} ({a['queries']}), S2A {b['MRR']:.3f} "
              f"({b['queries']})", flush=True)
    return out


def figure(pdf: Path, page_number: int, out: Path, staves: int = 2) -> None:
    """The page as the dataset reads it, its detected systems drawn in red (1-based numbers)."""
    from PIL import Image, ImageDraw

    from scorelink.search.pages import load_pages
    from scorelink.search.staves import find_systems

    page = load_pages(pdf)[page_number - 1]
    image = Image.fromarray(page).convert("RGB")
    draw = ImageDraw.Draw(image)
    for k, box in enumerate(find_systems(page, staves_per_system=staves), start=1):
        # The staff lines' outline, tilted as found: the box spans it at both ends.
        slope = np.tan(np.radians(box.skew))
        half = (box.bottom - box.top - abs(slope) * (box.right - box.left)) / 2
        mid = (box.left + box.right) / 2
        corners = [(x, box.centre + slope * (x - mid) + side * half)
                   for side, xs in ((-1, (box.left, box.right)), (1, (box.right, box.left)))
                   for x in xs]
        draw.polygon(corners, outline=(220, 0, 0), width=2)
        draw.text((box.left + 4, min(y for _, y in corners) - 12), f"system {k}",
                  fill=(220, 0, 0))
    image.save(out)
    print(out)


def _variants(page: np.ndarray, rng: np.random.Generator):
    """(name, PIL image) of a page as other scanners and printings would give it."""
    from PIL import Image

    img = Image.fromarray(page)
    height, width = page.shape
    yield "turned +1.5 deg", img.rotate(1.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    yield "turned -2.5 deg", img.rotate(-2.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    smaller = Image.new("L", (int(width * 1.35), int(height * 1.35)), 255)
    smaller.paste(img, (40, 60))  # more paper around it: staves 0.74 as tall at PAGE_WIDTH
    yield "printed smaller", smaller
    large = img.resize((3 * width, 3 * height), Image.Resampling.LANCZOS)
    yield "3x resolution", large
    grey = page.astype(np.float32) * (225 / 255) + 5 * rng.standard_normal(page.shape)
    grey[:, :30] = 20  # a black scanner border on the left, a dark band at the bottom
    grey[height - 25 :] = 30
    grey[rng.integers(0, height, 400), rng.integers(0, width, 400)] = 0  # specks
    yield "grey, border, specks", Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))
    yield "1-bit at 3x", Image.fromarray(((np.asarray(large) > 150) * 255).astype(np.uint8))


def robustness(root: Path, pages: int, seed: int) -> None:
    """Systems found on sampled scan pages against those found on the same pages altered."""
    import tempfile

    from scorelink.search.pages import load_pages
    from scorelink.search.staves import find_systems

    rng = np.random.default_rng(seed)
    pdfs = sorted((root / "pdf").glob("*.pdf"))
    failed: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pdf in rng.choice(pdfs, min(pages, len(pdfs)), replace=False):
            read = load_pages(pdf, normalise=False)
            k = int(rng.integers(0, len(read)))
            base = [b.staves for b in find_systems(load_pages(pdf)[k], staves_per_system=2)]
            for name, image in _variants(read[k], rng):
                image.save(Path(tmp) / "page.png")
                (page,) = load_pages(Path(tmp) / "page.png")
                found = [b.staves for b in find_systems(page, staves_per_system=2)]
                if found != base:
                    failed.setdefault(name, []).append(f"{pdf.stem} p{k + 1}: {base} -> {found}")
            print(f"{pdf.stem} page {k + 1}: {len(base)} systems", flush=True)
    print(f"{pages} pages x 6 alterations; differing: "
          + (", ".join(f"{k} {len(v)}" for k, v in failed.items()) or "none"))
    for name, rows in failed.items():
        for row in rows:
            print(f"  {name}: {row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("counts")
    c.add_argument("--beethoven-dir", required=True)
    c.add_argument("movements", nargs="*", help="only these (default: all)")
    a = sub.add_parser("alignments")
    a.add_argument("--beethoven-dir", required=True)
    k = sub.add_parser("checks")
    k.add_argument("data")
    e = sub.add_parser("evaluate")
    e.add_argument("data")
    e.add_argument("--checkpoint")
    e.add_argument("--pairs", type=int, default=534)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", help="write the numbers (with their intervals) to this file")
    e.add_argument("--as-built-only", action="store_true",
                   help="skip the copy whose strips are cut from the scans as read")
    r = sub.add_parser("robustness")
    r.add_argument("--beethoven-dir", required=True)
    r.add_argument("--pages", type=int, default=24)
    r.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("figure")
    f.add_argument("pdf")
    f.add_argument("page", type=int)
    f.add_argument("out")
    args = parser.parse_args()
    print(machine())
    if args.command == "counts":
        counts(Path(args.beethoven_dir), args.movements)
    elif args.command == "checks":
        checks(Path(args.data))
    elif args.command == "alignments":
        alignments(Path(args.beethoven_dir))
    elif args.command == "robustness":
        robustness(Path(args.beethoven_dir), args.pages, args.seed)
    elif args.command == "figure":
        figure(Path(args.pdf), args.page, Path(args.out))
    else:
        data = Path(args.data)
        print("scans normalised (as built):", flush=True)
        results = {"as built": evaluate(data, args.checkpoint, args.pairs, args.seed)}
        if not args.as_built_only:
            raw = data.with_name(data.name + "-unnormalised")
            unnormalised_copy(data, raw)
            print("scans as read (no normalisation):", flush=True)
            results["as read"] = evaluate(raw, args.checkpoint, args.pairs, args.seed)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
