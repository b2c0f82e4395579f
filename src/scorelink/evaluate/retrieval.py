"""The paper's evaluation protocol: embed one rendition of a split, rank across modalities.

Candidates are all passages of the split's evaluation rendition (test: the held-out timbre at
tempo 1.0, or at `tempo` for the robustness study). A system that sounds twice (a repeat) has
one sheet image: sheet candidates are unique systems, and an audio query is right when it
retrieves its system; a sheet query is right when it retrieves any audio passage of its system.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from scorelink.data.store import Dataset
from scorelink.errors import DatasetError
from scorelink.evaluate.metrics import bootstrap_intervals, ranks_from_scores, retrieval_metrics
from scorelink.train.batches import PassageSnippets, collate

DIRECTIONS = ("a2s", "s2a")


def eval_records(ds: Dataset, *, split: str, tempo: float = 1.0) -> list[dict]:
    """The passages of `split` in its evaluation rendition."""
    soundfont = ds.test_soundfont if split == "test" else ds.valid_soundfont
    records = ds.records(split=split, soundfont=soundfont, tempo=tempo)
    if not records:
        tempi = sorted({r["tempo"] for r in ds.records(split=split)})
        raise DatasetError(f"{ds.root}: no {split} passages of {soundfont} at tempo {tempo}"
                           + (f" (tempi there: {tempi})" if tempi else ""))
    return records


@torch.no_grad()
def embed(model, root: str | Path, records: list[dict], *, batch_size: int = 32,
          workers: int = 0, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(sheet (N, D), audio (N, D)) L2-normalised embeddings of the records, in order."""
    model.eval()
    loader = DataLoader(PassageSnippets(root, records), batch_size=batch_size,
                        collate_fn=collate, num_workers=workers)
    sheets, audios = [], []
    for b in loader:
        s = model.embed_sheet(b["sheet"].to(device), b["sheet_lengths"])
        a = model.embed_audio(b["audio"].to(device), b["audio_lengths"])
        sheets.append(s.float().cpu())
        audios.append(a.float().cpu())
    return torch.cat(sheets).numpy(), torch.cat(audios).numpy()


def group_systems(keys: list) -> tuple[list[int], np.ndarray]:
    """(index of each system's first passage, in order of appearance; (N,) system column of
    every passage). A system that sounds twice has one sheet image: its first passage's."""
    first: dict = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    column = {k: j for j, k in enumerate(first)}
    return list(first.values()), np.array([column[k] for k in keys])


def rank_passages(sheet: np.ndarray, audio: np.ndarray, keys: list) -> dict[str, np.ndarray]:
    """Ranks of the correct answer for each query, per direction.

    sheet, audio: (N, D) embeddings of N passages; keys[i] identifies passage i's system.
    """
    firsts, system_of = group_systems(keys)
    sheet_unique = sheet[firsts]  # (S, D): one sheet candidate per system
    relevant = system_of[:, None] == np.arange(len(firsts))[None, :]  # (N, S)
    return {
        "a2s": ranks_from_scores(audio @ sheet_unique.T, relevant),
        "s2a": ranks_from_scores(sheet_unique @ audio.T, relevant.T),
    }


def rank_records(model, data: str | Path, records: list[dict], *, workers: int = 0,
                 device: str = "cpu") -> dict[str, np.ndarray]:
    """Ranks of the correct answers among `records`: passage embeddings, or snippet votes (BL)."""
    if getattr(model, "kind", "rnn") == "snippet":
        from scorelink.evaluate.voting import vote_ranks

        return vote_ranks(model, data, records, device=device)
    sheet, audio = embed(model, data, records, workers=workers, device=device)
    return rank_passages(sheet, audio, [(r["piece"], r["system"]) for r in records])


def evaluate(model, data: str | Path, *, split: str = "test", tempo: float = 1.0,
             directions: tuple[str, ...] = DIRECTIONS, workers: int = 0,
             device: str = "cpu") -> dict:
    """{"a2s": {metric: value}, "s2a": {...}, "queries": {...}} for one split and tempo.

    Also "ci95" (per direction, each metric's 95% interval from resampling the test pieces),
    "ranks" (the rank of each query's answer) and "query_pieces" (each query's piece), so two
    models' results can be compared query by query (`metrics.paired_difference`).
    """
    ds = Dataset(data)
    records = eval_records(ds, split=split, tempo=tempo)
    ranks = rank_records(model, data, records, workers=workers, device=device)
    pieces = query_pieces(records)
    out = {d: retrieval_metrics(ranks[d]) for d in directions}
    out["queries"] = {d: int(len(ranks[d])) for d in directions}
    out["ci95"] = {d: bootstrap_intervals(ranks[d], pieces[d]) for d in directions}
    out["ranks"] = {d: ranks[d].tolist() for d in directions}
    out["query_pieces"] = {d: pieces[d] for d in directions}
    return out


def query_pieces(records: list[dict]) -> dict[str, list[str]]:
    """The piece of every query, per direction, in the order of `rank_passages`' ranks."""
    firsts, _ = group_systems([(r["piece"], r["system"]) for r in records])
    return {"a2s": [r["piece"] for r in records], "s2a": [records[i]["piece"] for i in firsts]}


def passage_at(passages: list[dict], frame: int) -> dict:
    """The passage of one rendition sounding at `frame`: the one whose [start_frame, end_frame)
    holds it; in the silence before the first, the first; past the last (or in a gap), the last
    that started before it. Clip benchmarks score "the system holding the clip's midpoint"."""
    ordered = sorted(passages, key=lambda r: r["start_frame"])
    started = [r for r in ordered if r["start_frame"] <= frame]
    if not started:
        return ordered[0]
    return next((r for r in started if frame < r["end_frame"]), started[-1])
