"""Looking at a dataset: counts, the passage-duration histogram, one passage drawn."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from scorelink.constants import FPS
from scorelink.data.store import Dataset


def system_durations(records: list[dict], split: str) -> list[float]:
    """Seconds each system occurrence lasts at the score's own tempo (once, not per rendition)."""
    seen: dict[tuple, float] = {}
    for r in records:
        if r["split"] == split:
            key = (r["piece"], r["system"], r["occurrence"])
            seen.setdefault(key, (r["end"] - r["start"]) * r["tempo"])
    return list(seen.values())


def stats(dataset: Dataset) -> dict:
    """Counts per split, durations, failures, sizes: a JSON-friendly summary."""
    records = list(dataset)
    pieces = {r["piece"]: r["split"] for r in records}
    per_split = {}
    for split in ("train", "valid", "test"):
        rs = [r for r in records if r["split"] == split]
        per_split[split] = {
            "pieces": sum(1 for s in pieces.values() if s == split),
            "passages": len(rs),
            "renditions": dict(sorted(Counter(r["rendition"] for r in rs).items())),
        }
    durations = np.array([d for split in per_split for d in system_durations(records, split)])
    failures_path = dataset.root / "failures.jsonl"
    failures = [json.loads(x) for x in failures_path.read_text().splitlines() if x.strip()] \
        if failures_path.exists() else []
    size = sum(p.stat().st_size for p in dataset.root.rglob("*") if p.is_file())
    return {
        "dataset": str(dataset.root),
        "pieces": len(pieces),
        "passages": len(records),
        "splits": per_split,
        "tall_systems": len({(r["piece"], r["system"]) for r in records if r["tall"]}),
        "duration_seconds": {
            "mean": float(durations.mean()),
            "median": float(np.median(durations)),
            "max": float(durations.max()),
            "share_over_10s": float((durations > 10).mean()),
        },
        "audio_hours": sum(r["end"] - r["start"] for r in records) / 3600,
        "failures": failures,
        "size_mb": size / 2**20,
        "example_passage": (dataset.records(split="test", tempo=1.0) or records)[0]["passage_id"],
    }


def format_stats(s: dict) -> str:
    lines = [f"dataset {s['dataset']}: {s['pieces']} pieces, {s['passages']} passages "
             f"({s['audio_hours']:.1f} h of audio, {s['size_mb']:.0f} MB)"]
    lines.append(f"{'split':<6} {'pieces':>6} {'passages':>9}  renditions")
    for split, v in s["splits"].items():
        rend = ", ".join(f"{k} x{n}" for k, n in v["renditions"].items()) if len(
            v["renditions"]) <= 5 else f"{len(v['renditions'])} kinds"
        lines.append(f"{split:<6} {v['pieces']:>6} {v['passages']:>9}  {rend}")
    d = s["duration_seconds"]
    lines.append(f"passage duration (score tempo): mean {d['mean']:.1f} s, "
                 f"median {d['median']:.1f} s, max {d['max']:.1f} s, "
                 f"{100 * d['share_over_10s']:.0f} % longer than 10 s")
    lines.append(f"systems taller than the strip: {s['tall_systems']}")
    lines.append(f"example passage (for `scorelink data show`): {s['example_passage']}")
    lines.append(f"failures: {len(s['failures'])}")
    for f in s["failures"][:20]:
        lines.append(f"  {f['piece']} ({f['stage']}): {f['reason']}")
    return "\n".join(lines)


def duration_histogram(dataset: Dataset, out: str | Path) -> Path:
    """Histogram of passage durations per split at tempo 1.0 (the paper's Figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.arange(0, 41, 1.0)
    for split in ("train", "valid", "test"):
        durations = system_durations(list(dataset), split)
        if durations:
            label = f"{split} ({len(durations)})"
            ax.hist(np.clip(durations, 0, 40), bins=bins, alpha=0.6, label=label)
    ax.set_xlabel("passage duration at the score tempo (s; last bin: 40 s or more)")
    ax.set_ylabel("passages")
    ax.legend()
    ax.set_title("Duration of audio passages (one per system played)")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def show_passage(dataset: Dataset, passage_id: str, out: str | Path) -> Path:
    """Draw a passage: the system strip (noteheads marked) above its spectrogram (onsets marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = dataset.record(passage_id)
    p = dataset.passage(record)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [1, 1]})
    a1.imshow(p.strip, cmap="gray", vmin=0, vmax=255, aspect="equal")
    a1.scatter(p.notes["x"], p.notes["y"], s=8, c="red", marker="x", linewidths=0.7)
    a1.set_title(f"{passage_id}: page {record['page'] + 1}, system {record['system_on_page'] + 1}")
    a1.axis("off")
    seconds = p.spec.shape[1] / FPS
    a2.imshow(p.spec, origin="lower", aspect="auto", cmap="magma",
              extent=(record["start"], record["start"] + seconds, 0, p.spec.shape[0]))
    for t in np.unique(p.notes["onset"]):
        a2.axvline(t, color="cyan", lw=0.5, alpha=0.6)
    a2.set_xlabel(f"time in the {record['rendition']} rendition (s); cyan: note onsets")
    a2.set_ylabel("log-frequency bin")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
