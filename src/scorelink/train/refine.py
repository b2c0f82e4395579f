"""Post-training CCA refinement of the snippet model (BL -> BL-CCA, the start of RNN-*-CCA).

Draws training snippet pairs (no augmentation), fits CCA on the CNN outputs of the two towers
and writes a new checkpoint whose towers apply the fitted projections.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from scorelink import checkpoint
from scorelink.data.store import Dataset
from scorelink.errors import CheckpointError, DatasetError
from scorelink.models.cca import REG, fit_cca
from scorelink.models.snippet_model import SnippetModel, SnippetModelConfig
from scorelink.train.snippet_batches import NoteSnippets

N_PAIRS = 25_000


@torch.no_grad()
def refine_cca(source: str | Path, data: str | Path, out: str | Path, *, pairs: int = N_PAIRS,
               seed: int = 0, reg: float = REG, batch_size: int = 256) -> dict:
    """Fit the CCA layer of the snippet model in `source` and save it to `out`.

    Returns {"pairs": n, "reg": reg, "correlations": [...]} (also stored in the checkpoint).
    """
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise CheckpointError(f"--out {out} is the source checkpoint; write to a new file")
    model, payload = checkpoint.load_model(source, kind="snippet")
    records = Dataset(data).records(split="train")
    if not records:
        raise DatasetError(f"{data}: no training passages to fit CCA on")
    snippets = NoteSnippets(data, records)
    if len(snippets) < 2:
        raise DatasetError(f"{data}: too few training snippet pairs ({len(snippets)})")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(snippets), size=min(pairs, len(snippets)), replace=False)
    sheet, audio = [], []
    for b in DataLoader(Subset(snippets, chosen.tolist()), batch_size=batch_size):
        sheet.append(model.sheet.features(b["sheet"]))
        audio.append(model.audio.features(b["audio"]))
    sheet_x, audio_y = torch.cat(sheet), torch.cat(audio)
    mean_s, w_s, mean_a, w_a, corr = fit_cca(sheet_x, audio_y, reg=reg)

    config = SnippetModelConfig(**{**model.config.to_dict(), "cca": True})
    refined = SnippetModel(config)
    refined.load_state_dict(model.state_dict(), strict=False)
    refined.sheet.cca.set(mean_s, w_s)
    refined.audio.cca.set(mean_a, w_a)
    info = {"pairs": len(chosen), "reg": reg, "seed": seed,
            "correlations": [round(float(c), 5) for c in corr]}
    keep = {k: v for k, v in payload.items()
            if k in ("train_config", "metrics", "epoch", "step")}
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(out, refined.eval(), **keep, refined_from=str(source), cca=info)
    return info
