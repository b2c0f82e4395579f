"""Train the note reader (`scorelink.models.reader`) on engraved systems whose noteheads the
engraving placed, and on real scans whose written notes it places itself.

    python -m scorelink.train.reader --data DIR [--data DIR ...] --out RUN [--minutes M]
        [--scans DIR --kern KERN_DIR] [--epochs N] [--resume] [--lr 1e-3] [--seed 0]
    python -m scorelink.train.reader --ship RUN/best.pt   # -> scorelink/weights/reader.pt
    python -m scorelink.train.reader --data DIR [--data DIR ...] --evaluate CKPT \
        [--split valid] [--thresholds 0.3,0.5,0.7] [--scans DIR --kern KERN_DIR]

Every dataset folder's training systems (one strip per system, its notes' x and pitch from the
engraving: `x` in the notes tables) teach it, their validation systems judge it after each
epoch: a notehead read is right when the engraving has a note of that pitch within MATCH_PX;
precision, recall and F1 of pitches and of pitch classes. RUN/last.pt is written after every
epoch (model and optimizer), RUN/best.pt when validation F1 rises; RUN/log.jsonl has a line an
epoch. Augmentation: half the strips made to look scanned (`scanlike.scan_like`), every strip
stretched in width by 0.8-1.25 (engravers space notes differently) and shifted up or down by
up to SHIFT_PX.

`--scans DIR` adds a real-scan dataset's training systems (scanned pages with their written
notes, no notehead places): at every epoch the model being trained places each system's
written notes on its strip, and the systems it can place teach too
(`scorelink.train.scan_targets`); the log adds F1 on the scans' validation systems against the
places it gives them (a check that reading scans improves, not a score against truth).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from scorelink.models.reader import (
    LOWEST,
    PITCHES,
    READER_STRIDE,
    NoteReader,
    as_input,
    output_columns,
)
from scorelink.train.scan_targets import scan_systems

MATCH_PX = 8.0  # a read notehead within this many px of an engraved one of its pitch: right
HEAD_PX = 5.0  # output columns whose centre lies this near a notehead are its targets
SHIFT_PX = 6
STRETCH = (0.8, 1.25)
POS_WEIGHT = 4.0  # noteheads are rare among (column, pitch) cells
BATCH = 8
LR = 1e-3


def systems(root: str | Path, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(strip uint8 (H, W), notes (n, 2) [x px, MIDI pitch]) of each system of the split, as
    the first rendition of its piece plays it (every performed note's head; ties are not
    struck again and have none)."""
    from scorelink.data.store import Dataset

    ds = Dataset(root)
    first: dict[str, str] = {}
    out = []
    for r in ds.records(split=split):
        if first.setdefault(r["piece"], r["rendition"]) != r["rendition"] or r["occurrence"]:
            continue
        heads = ds.noteheads(r)
        readable = (heads[:, 1] >= LOWEST) & (heads[:, 1] < LOWEST + PITCHES)
        out.append((ds.strip(r), heads[readable]))
    return out


def targets(notes: np.ndarray, columns: int) -> np.ndarray:
    """(columns, PITCHES) float32 0/1: the output columns near each notehead of its pitch."""
    y = np.zeros((columns, PITCHES), np.float32)
    centres = np.arange(columns) * READER_STRIDE + READER_STRIDE / 2
    for x, pitch in notes:
        near = np.abs(centres - x) <= HEAD_PX
        y[near, int(pitch) - LOWEST] = 1.0
    return y


def augment(strip: np.ndarray, notes: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import zoom

    from scorelink.train.batches import shift_rows
    from scorelink.train.scanlike import scan_like

    if rng.random() < 0.5:
        strip = scan_like(strip, rng)
    f = rng.uniform(*STRETCH)
    strip = np.clip(zoom(strip.astype(np.float32), (1.0, f), order=1), 0, 255).astype(np.uint8)
    strip = shift_rows(strip, int(rng.integers(-SHIFT_PX, SHIFT_PX + 1)))
    return strip, notes * [f, 1.0]


def batch_tensors(items: list[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs (B, 1, H, W), targets (B, W / stride, PITCHES), mask (B, W / stride))."""
    x = as_input([s for s, _ in items])
    columns = x.shape[-1] // READER_STRIDE
    y = np.stack([targets(n, columns) for _, n in items])
    mask = np.zeros((len(items), columns), np.float32)
    for k, (s, _) in enumerate(items):
        mask[k, :output_columns(s.shape[1])] = 1.0
    return x, torch.from_numpy(y), torch.from_numpy(mask)


def score(read: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    """Precision, recall and F1 of read noteheads (x, pitch) against the engraved ones, by pitch
    and by pitch class (a read head is right when an unclaimed true one lies within MATCH_PX)."""
    out = {}
    for name, fold in (("pitch", lambda p: p), ("class", lambda p: p % 12)):
        hits = n_read = n_true = 0
        for r, t in zip(read, truth, strict=True):
            n_read, n_true = n_read + len(r), n_true + len(t)
            free = np.ones(len(t), bool)
            for x, p in r:
                near = free & (np.abs(t[:, 0] - x) <= MATCH_PX) & (fold(t[:, 1]) == fold(p))
                if near.any():
                    free[np.flatnonzero(near)[0]] = False
                    hits += 1
        precision, recall = hits / max(n_read, 1), hits / max(n_true, 1)
        out[f"{name}_precision"], out[f"{name}_recall"] = precision, recall
        out[f"{name}_f1"] = 2 * precision * recall / max(precision + recall, 1e-9)
    return out


@torch.no_grad()
def validate(model: NoteReader, valid: list[tuple[np.ndarray, np.ndarray]], *,
             threshold: float | None = None) -> dict[str, float]:
    from scorelink.models.reader import READ_THRESHOLD, read_strips

    model.eval()
    read = read_strips(model, [s for s, _ in valid], threshold=threshold or READ_THRESHOLD)
    model.train()
    return score(read, [n for _, n in valid])


def evaluate(path: str, folders: list[str], split: str, thresholds: list[float], *,
             scans: tuple[str, ...] = (), kern: str | None = None) -> None:
    """Print the reader's scores on the folders' split at each threshold (Markdown); scans:
    real-scan folders, scored against the places the reader gives their written notes."""
    from scorelink.models.reader import load_reader

    model = load_reader(path)
    print("| data | threshold | pitch P / R / F1 | pitch class P / R / F1 |\n|---|---|---|---|")
    sets = [(folder, systems(folder, split)) for folder in folders]
    sets += [(f"{folder} (placed by the reader)",
              scan_systems(folder, split, model, kern, keep=0.0)[0]) for folder in scans]
    for folder, held in sets:
        for t in thresholds:
            m = validate(model, held, threshold=t)
            print(f"| {Path(folder).name} {split} ({len(held)} systems) | {t:g} | "
                  + " | ".join(" / ".join(f"{100 * m[f'{k}_{x}']:.1f}"
                                          for x in ("precision", "recall", "f1"))
                               for k in ("pitch", "class")) + " |")


def ship(source: str | Path, dest: str | Path | None = None) -> Path:
    """Write a trained reader's checkpoint as the package ships it: its weights in float16
    (half the size; `NoteReader.from_payload` reads them back as float32)."""
    from scorelink.models.reader_file import shipped_reader_path

    payload = torch.load(source, map_location="cpu", weights_only=False)
    payload["state"] = {k: v.half() if v.is_floating_point() else v
                        for k, v in payload["state"].items()}
    dest = Path(dest or shipped_reader_path())
    torch.save(payload, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", action="append")
    p.add_argument("--out")
    p.add_argument("--ship", metavar="CKPT", help="write CKPT as the shipped reader and stop")
    p.add_argument("--evaluate", metavar="CKPT", help="score CKPT on --split of --data, stop")
    p.add_argument("--split", default="valid")
    p.add_argument("--thresholds", default="0.5")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--scans", action="append", default=[],
                   help="a real-scan dataset folder: its training systems teach too, their "
                        "noteheads placed by the model at every epoch (train/scan_targets.py)")
    p.add_argument("--kern", default="../shared/data/beethoven/kern",
                   help="the kern files the --scans datasets were built from")
    p.add_argument("--epochs", type=int, default=0,
                   help="stop after this many epochs of this run (0: only --minutes stops it)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--lr", type=float, default=LR,
                   help="learning rate; also replaces a resumed optimizer's (to end a run lower)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.ship:
        print(f"shipped {args.ship} as {ship(args.ship)}")
        return 0
    if args.evaluate and (args.data or args.scans):
        torch.set_num_threads(args.threads)
        evaluate(args.evaluate, args.data or [], args.split,
                 [float(t) for t in args.thresholds.split(",")], scans=args.scans,
                 kern=args.kern)
        return 0
    if not args.data or not args.out:
        p.error("--data and --out are needed to train")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = [s for d in args.data for s in systems(d, "train")]
    valid = [s for d in args.data for s in systems(d, "valid")]
    print(f"{len(train)} training systems, {len(valid)} validation systems", flush=True)
    model = NoteReader()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    epoch, best = 0, -1.0
    if args.resume and (out / "last.pt").exists():
        state = torch.load(out / "last.pt", weights_only=False)
        model.load_state_dict(state["model"]["state"])
        opt.load_state_dict(state["optimizer"])
        epoch, best = state["epoch"], state["best"]
        for group in opt.param_groups:
            group["lr"] = args.lr
        rng = np.random.default_rng(args.seed + epoch)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(POS_WEIGHT), reduction="none")
    end = time.time() + 60 * args.minutes
    model.train()
    stop = epoch + args.epochs if args.epochs else None
    while time.time() < end and epoch != stop:
        t0, losses, pool, placed = time.time(), [], train, {"systems": 0, "kept": 0}
        for folder in args.scans:
            scans, counts = scan_systems(folder, "train", model, args.kern)
            print(f"{folder}: {counts}", flush=True)
            pool = pool + scans
            placed = {k: placed[k] + counts[k] for k in placed}
        order = rng.permutation(len(pool))
        for k in range(0, len(pool), BATCH):
            items = [augment(*pool[i], rng) for i in order[k:k + BATCH]]
            x, y, mask = batch_tensors(items)
            loss = (loss_fn(model(x), y).mean(-1) * mask).sum() / mask.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if time.time() > end:
                break
        epoch += 1
        metrics = validate(model, valid)
        if args.scans:  # judged against the places the model itself gives the written notes
            held = [s for folder in args.scans
                    for s in scan_systems(folder, "valid", model, args.kern, keep=0.0)[0]]
            metrics.update({f"scan_{k}": v for k, v in validate(model, held).items()
                            if k.startswith("pitch")})
            metrics["scan_train_kept"] = placed["kept"] / max(placed["systems"], 1)
        row = {"epoch": epoch, "lr": args.lr, "loss": float(np.mean(losses)),
               "seconds": time.time() - t0,
               **{k: round(v, 4) for k, v in metrics.items()}}
        print(json.dumps(row), flush=True)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if metrics["pitch_f1"] > best:
            best = metrics["pitch_f1"]
            torch.save({**model.payload(), "epoch": epoch, "metrics": metrics}, out / "best.pt")
        torch.save({"model": model.payload(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "best": best}, out / "last.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
