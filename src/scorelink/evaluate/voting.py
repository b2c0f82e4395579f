"""Passage retrieval with the snippet model (BL): snippets vote for the passages of their
nearest neighbours in the other modality.

Both sides are cut densely: sheet windows every 20 px across the system, audio windows every
4 frames (0.2 s) across the passage. Each query snippet gives one vote to the owner of each of
its 25 nearest candidate snippets; candidates are ranked by votes (similarity breaks ties).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scorelink.data.store import Dataset
from scorelink.evaluate.metrics import ranks_from_scores
from scorelink.evaluate.retrieval import group_systems
from scorelink.models.snippets import audio_window, sheet_window

SHEET_HOP_PX = 20
AUDIO_HOP_FRAMES = 4
K_VOTES = 25


def sheet_windows(strip: np.ndarray, left: float, right: float) -> np.ndarray:
    """(n, 80, 90) windows centred every SHEET_HOP_PX px between left and right."""
    centres = np.arange(left + SHEET_HOP_PX / 2, max(right, left + 1), SHEET_HOP_PX)
    return np.stack([sheet_window(strip, x) for x in centres])


def audio_windows(spec: np.ndarray, start: int, end: int) -> np.ndarray:
    """(n, 92, 20) windows centred every AUDIO_HOP_FRAMES frames in [start, end)."""
    return np.stack([audio_window(spec, f) for f in range(start, max(end, start + 1),
                                                          AUDIO_HOP_FRAMES)])


@torch.no_grad()
def _embed(fn, snippets: np.ndarray, *, batch: int = 512, device: str = "cpu") -> np.ndarray:
    out = [fn(torch.from_numpy(snippets[a : a + batch])[:, None].to(device)).float().cpu()
           for a in range(0, len(snippets), batch)]
    return torch.cat(out).numpy()


def _votes(query: np.ndarray, db: np.ndarray, owner: np.ndarray, n_owners: int) -> np.ndarray:
    """(n_owners,) votes (+ a tie-breaking similarity share below 1) from the query snippets."""
    sims = query @ db.T  # (q, n_db)
    k = min(K_VOTES, db.shape[0])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (q, k)
    votes = np.bincount(owner[top].ravel(), minlength=n_owners).astype(np.float64)
    weight = np.bincount(owner[top].ravel(), weights=np.take_along_axis(sims, top, 1).ravel(),
                         minlength=n_owners)
    return votes + (weight + top.size) / (2 * top.size + 1)  # the share is in (0, 1)


def vote_ranks(model, root: str | Path, records: list[dict], *,
               device: str = "cpu") -> dict[str, np.ndarray]:
    """Ranks of the correct answer per query in both directions (protocol of `retrieval`)."""
    model.eval()
    ds = Dataset(root)
    keys = [(r["piece"], r["system"]) for r in records]
    firsts, system_of = group_systems(keys)
    sheet_db, sheet_owner = [], []
    for j, first in enumerate(firsts):
        r = records[first]
        w = sheet_windows(ds.strip(r), r["box"][1], r["box"][3])
        sheet_db.append(_embed(model.embed_sheet, w, device=device))
        sheet_owner += [j] * len(w)
    audio_db, audio_owner = [], []
    for i, r in enumerate(records):
        w = audio_windows(ds.rendition_spec(r), r["start_frame"], r["end_frame"])
        audio_db.append(_embed(model.embed_audio, w, device=device))
        audio_owner += [i] * len(w)
    sheet_all, audio_all = np.concatenate(sheet_db), np.concatenate(audio_db)
    sheet_owner_a, audio_owner_a = np.array(sheet_owner), np.array(audio_owner)

    relevant = system_of[:, None] == np.arange(len(firsts))[None, :]  # (N, S)
    a2s = np.stack([_votes(q, sheet_all, sheet_owner_a, len(firsts)) for q in audio_db])
    s2a = np.stack([_votes(q, audio_all, audio_owner_a, len(records)) for q in sheet_db])
    return {"a2s": ranks_from_scores(a2s, relevant), "s2a": ranks_from_scores(s2a, relevant.T)}
