"""Benchmark: training and embedding throughput of the passage model (and BL) on this machine.

    python benchmarks/model_speed.py --data data/chorales

bfloat16 autocast + channels-last CNNs (what `scorelink train` uses where the CPU runs bfloat16
natively), float32 with channels-last CNNs (what it uses elsewhere, `bf16=auto`) and plain float32
run side by side in one process, alternating round by round on the same real training batches,
so the ratios survive a noisy shared machine. Peak memory is measured per mode
in a child process (a fresh process per mode, so one mode's peak does not hide the other's).
Prints a Markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
from _machine import machine  # benchmarks/_machine.py

from scorelink.data.store import Dataset
from scorelink.models.passage import PassageModel, PassageModelConfig
from scorelink.models.snippet_model import SnippetModel, SnippetModelConfig
from scorelink.precision import cpu_bf16_native
from scorelink.train.batches import PassageSnippets, collate
from scorelink.train.loss import PassageLoss
from scorelink.train.snippet_batches import NoteSnippets

MODES = ("bf16+channels_last", "fp32+channels_last", "fp32")  # ratios are against the last


def _batches(data: str, kind: str, n: int, size: int, seed: int = 0) -> list[dict]:
    records = Dataset(data).records(split="train")
    g = torch.Generator().manual_seed(seed)
    if kind == "rnn":
        items = PassageSnippets(data, records)
        pick = torch.randperm(len(items), generator=g)[: n * size].tolist()
        return [collate([items[i] for i in pick[k * size:(k + 1) * size]]) for k in range(n)]
    items = NoteSnippets(data, records)
    pick = torch.randperm(len(items), generator=g)[: n * size].tolist()
    return [torch.utils.data.default_collate([items[i] for i in pick[k * size:(k + 1) * size]])
            for k in range(n)]


def _prepare(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    if mode.endswith("channels_last"):
        for tower in (model.sheet, model.audio):
            tower.cnn.to(memory_format=torch.channels_last)
    return model


def _ctx(mode: str):
    if mode.startswith("bf16"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _inputs(batch: dict, mode: str, kind: str) -> tuple:
    fmt = torch.channels_last if mode.endswith("channels_last") else torch.contiguous_format
    sheet = batch["sheet"].contiguous(memory_format=fmt)
    audio = batch["audio"].contiguous(memory_format=fmt)
    if kind == "snippet":
        return (sheet, audio)
    return sheet, batch["sheet_lengths"], audio, batch["audio_lengths"]


def _train_steps(model, opt, loss_fn, batches, mode, kind) -> float:
    """Items per second over the batches (forward, backward, optimizer step)."""
    model.train()
    t0 = time.perf_counter()
    for b in batches:
        with _ctx(mode):
            s, a = model(*_inputs(b, mode, kind))
        loss = loss_fn(s, a)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return sum(len(b["index"]) for b in batches) / (time.perf_counter() - t0)


@torch.no_grad()
def _embed(model, batches, mode, kind, side) -> float:
    model.eval()
    t0 = time.perf_counter()
    for b in batches:
        x = _inputs(b, mode, kind)
        with _ctx(mode):
            if kind == "snippet":
                model.embed_sheet(x[0]) if side == "sheet" else model.embed_audio(x[1])
            elif side == "sheet":
                model.embed_sheet(x[0], x[1])
            else:
                model.embed_audio(x[2], x[3])
    return sum(len(b["index"]) for b in batches) / (time.perf_counter() - t0)


def _models(kind: str):
    torch.manual_seed(0)
    if kind == "rnn":
        return PassageModel(PassageModelConfig.preset("paper")), PassageLoss(margin=0.3)
    return SnippetModel(SnippetModelConfig.preset("paper")), PassageLoss(margin=0.6)


def side_by_side(data: str, kind: str, n_batches: int, size: int, rounds: int) -> dict:
    batches = _batches(data, kind, n_batches, size)
    base, loss_fn = _models(kind)
    runs = {}
    for mode in MODES:
        model = _prepare(copy.deepcopy(base), mode)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        _train_steps(model, opt, loss_fn, batches[:1], mode, kind)  # warm-up
        runs[mode] = (model, opt)
    result = {m: {"train": [], "embed_sheet": [], "embed_audio": []} for m in MODES}
    for _ in range(rounds):
        for mode in MODES:
            model, opt = runs[mode]
            result[mode]["train"].append(_train_steps(model, opt, loss_fn, batches, mode, kind))
            result[mode]["embed_sheet"].append(_embed(model, batches, mode, kind, "sheet"))
            result[mode]["embed_audio"].append(_embed(model, batches, mode, kind, "audio"))
    return {m: {k: statistics.median(v) for k, v in r.items()} for m, r in result.items()}


def peak_memory(data: str, kind: str, mode: str, size: int) -> float:
    """Peak RSS (MB) of a fresh process doing three training steps in `mode`.

    Read from VmHWM: getrusage's ru_maxrss would carry this (big) parent's peak into the child.
    """
    here = str(Path(__file__).parent)
    code = (f"import sys; sys.path.insert(0, {here!r}); import model_speed as m, torch;"
            f"b = m._batches({data!r}, {kind!r}, 3, {size});"
            f"model, loss = m._models({kind!r}); m._prepare(model, {mode!r});"
            "opt = torch.optim.AdamW(model.parameters());"
            f"m._train_steps(model, opt, loss, b, {mode!r}, {kind!r});"
            "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-2]) / 1024


def _mb(value: float) -> str:
    return "not measured" if value != value else f"{value:,.0f} MB"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="a dataset folder (its training passages)")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-scale", type=float, default=1.0,
                   help="batches this share of the training batch (64 passages, 256 pairs), "
                        "for slow paths")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--json", help="also write the raw figures here")
    args = p.parse_args()
    figures = {}
    for kind, size, unit in (("rnn", 64, "passages"), ("snippet", 256, "snippet pairs")):
        size = max(2, round(size * args.batch_scale))
        speed = side_by_side(args.data, kind, args.batches, size, args.rounds)
        memory = ({m: float("nan") for m in MODES} if args.no_memory else
                  {m: peak_memory(args.data, kind, m, size) for m in MODES})
        figures[kind] = {"speed": speed, "peak_mb": memory, "batch": size, "unit": unit}
    native = cpu_bf16_native()
    print(f"### Model throughput ({date.today()})\n")
    print(f"- machine: {machine()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} thread(s)); oneDNN bfloat16 native: {native} "
          f"(`bf16=auto` takes {MODES[0] if native else MODES[1]})")
    print(f"- `python benchmarks/model_speed.py {' '.join(sys.argv[1:])}`: {args.batches} real "
          f"training batches, median of {args.rounds} alternating rounds\n")
    print("| model | path | train (items/s) | embed sheet (items/s) | embed audio (items/s) "
          "| peak memory, training |")
    print("|---|---|---|---|---|---|")
    for kind, f in figures.items():
        for mode in MODES:
            s = f["speed"][mode]
            print(f"| {kind} (batch {f['batch']} {f['unit']}) | {mode} | {s['train']:.1f} | "
                  f"{s['embed_sheet']:.1f} | {s['embed_audio']:.1f} | "
                  f"{_mb(f['peak_mb'][mode])} |")
        plain = f["speed"][MODES[-1]]
        for mode in MODES[:-1]:
            fast = f["speed"][mode]
            print(f"| {kind} | {mode} / fp32 | {fast['train'] / plain['train']:.2f}x | "
                  f"{fast['embed_sheet'] / plain['embed_sheet']:.2f}x | "
                  f"{fast['embed_audio'] / plain['embed_audio']:.2f}x | |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
