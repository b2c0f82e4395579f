"""One run configuration: a dataclass, loaded from a JSON file, overridden by key=value."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from scorelink import precision
from scorelink.errors import ConfigError

# The snippet baseline's own values (Dorfer et al. as adapted by the paper); they replace the
# passage model's defaults when model="snippet", unless set explicitly.
SNIPPET_DEFAULTS = {"embed_dim": 32, "margin": 0.6, "lr": 1e-4, "weight_decay": 1e-3,
                    "batch_size": 256, "passages_per_epoch": 65_536}


@dataclass
class TrainConfig:
    data: str = ""  # dataset folder: training passages, and the validation that selects
    extra_data: str = ""  # more folders, comma-separated, whose training passages join data's
    out: str = ""
    model: str = "rnn"  # rnn (the passage model) | snippet (the baseline, BL)
    preset: str = "paper"  # model shape: paper | tiny
    embed_dim: int = 64
    snippet_dim: int = 0  # > 0: the width of each snippet's vector (the paper: 32); a passage
    # checkpoint of init_from with narrower ones is widened into it, its function kept
    # (models.passage.widen_snippets; not in the paper)
    rnn: str = "gru"  # gru | lstm
    epochs: int = 180
    passages_per_epoch: int = 16_384  # drawn at random each epoch (snippet model: pairs)
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-5
    margin: float = 0.3
    symmetric: bool = False  # also use audio as the anchor
    hard_negatives: int = 0  # 0: mean over all negatives (the paper); k: the k hardest per anchor
    temperature: float = 0.0  # > 0: the InfoNCE loss at this temperature in place of the
    # paper's hinge (scorelink.train.loss.info_nce; not in the paper)
    lr_factor: float = 0.5  # on a validation-MRR plateau
    patience: int = 15  # epochs without improvement before the learning rate is halved
    min_lr: float = 2e-6
    valid_passages: int = 2_048  # at most this many validation passages (per folder)
    valid_on: str = "first"  # which validation split selects the checkpoint and steps the LR:
    # first: the first folder's; all: the mean MRR over every folder that has one (a model
    # meant for several kinds of music is chosen on all of them)
    augment: bool = True  # sheet strips shifted vertically by up to 5 px
    timbre_augment: bool = False  # audio: random equaliser curve and gain (not in the paper)
    tempo_augment: float = 0.0  # > 1: half the passages stretched by a factor in [1/x, x]
    crop_augment: float = 0.0  # this share of passages cut to a run of their onsets (not in
    # the paper: more distinct training pairs from the note alignment, as the BL has)
    join_augment: float = 0.0  # this share of passages cut to a run of onsets across the
    # boundary into the next system (both strips joined, the audio across: what a clip cut at a
    # random place hears and the index's parts show; not in the paper); the rest may be cropped
    room_augment: float = 0.0  # this share of passages' audio given a reverberation tail and
    # compressed or expanded dynamics (scorelink.train.batches.room; not in the paper)
    piano_augment: float = 0.0  # this share of passages played by a random other piano: a gain
    # per harmonic of every note and a thump at every onset (batches.replay; not in the paper)
    fine_eq_augment: float = 0.0  # this share of passages' audio through a random equaliser
    # with a gain for every band (batches.fine_equalise; not in the paper)
    scan_augment: float = 0.0  # this share of sheet strips degraded as scans (slight skew, blur,
    # 1-bit threshold, specks, off-white paper: scorelink.train.scanlike; not in the paper)
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights,
    # this decay per optimizer step (not in the paper; 0.995 averages about 200 steps)
    piece_batches: int = 0  # > 0: batches of groups of this many neighbouring systems of one
    # piece (scorelink.train.batches.PieceSampler; not in the paper), so that the systems beside
    # each passage are among its negatives; 0: passages drawn at random (the paper)
    keep_epochs: bool = False  # also write every epoch's validated weights to
    # RUN/epochs/epoch-NNN.pt (no optimizer state), for choosing or averaging them afterwards
    # (scorelink.train.average)
    workers: int = 2  # data-loading processes
    seed: int = 0
    bf16: str = "auto"  # bfloat16 autocast for the CNNs on CPU: auto (where the CPU runs it
    # natively, scorelink.precision) | true | false
    channels_last: bool = True
    device: str = "auto"  # auto | cpu | cuda
    init_from: str = ""  # snippet checkpoint: start the CNNs from it; passage: all weights
    init_cnns_only: bool = False  # from a passage checkpoint too, take only its CNNs (and CCA),
    # as from a BL: the GRUs and head start afresh (e.g. another embed_dim, Figure 3's sweep)
    freeze_cnn: bool = False
    cache_features: int = 0  # > 0 (with freeze_cnn): the frozen CNNs' outputs are computed once
    # for this many augmented views of every training passage and the GRUs train on them
    max_steps: int = 0  # stop after this many optimizer steps (0: no limit; for smoke tests)
    train_passages: int = 0  # > 0: train on this many training passages drawn at random
    # (seeded), not all of them: a smaller budget for sweeps such as Figure 3's

    def to_dict(self) -> dict:
        return asdict(self)

    def folders(self) -> list[str]:
        """Every folder that gives training passages: data first, then extra_data."""
        return [self.data] + [f.strip() for f in self.extra_data.split(",") if f.strip()]

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None,
             **values) -> TrainConfig:
        """Defaults <- JSON file <- keyword values <- key=value strings. Unknown keys are errors."""
        merged: dict = {}
        if path:
            try:
                merged.update(json.loads(Path(path).read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"cannot read config {path}: {exc}") from exc
        merged.update({k: v for k, v in values.items() if v is not None})
        types = {f.name: f.type for f in fields(cls)}
        for item in overrides or []:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"expected key=value, got {item!r}")
            if key not in types:
                raise ConfigError(f"unknown config key {key!r}; known: {', '.join(types)}")
            merged[key] = _parse(text, types[key], key)
        unknown = set(merged) - set(types)
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}; known: {', '.join(types)}")
        if merged.get("model", "rnn") not in ("rnn", "snippet"):
            raise ConfigError(f"model must be rnn or snippet, not {merged['model']!r}")
        if merged.get("valid_on", "first") not in ("first", "all"):
            raise ConfigError(f"valid_on must be first or all, not {merged['valid_on']!r}")
        if "bf16" in merged:
            try:
                merged["bf16"] = precision.setting(merged["bf16"])
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if int(merged.get("train_passages", 0)) < 0:
            raise ConfigError(f"train_passages counts passages (0: all), not "
                              f"{merged['train_passages']!r}")
        if not 0.0 <= float(merged.get("ema", 0.0)) < 1.0:
            raise ConfigError(f"ema is a decay in [0, 1), not {merged['ema']!r}")
        group = int(merged.get("piece_batches", 0))
        if group < 0 or (group and int(merged.get("batch_size", 64)) % group):
            raise ConfigError(f"piece_batches divides batch_size into groups, not {group!r}")
        for share in ("scan_augment", "crop_augment", "join_augment", "room_augment",
                      "piano_augment", "fine_eq_augment"):
            if not 0.0 <= float(merged.get(share, 0.0)) <= 1.0:
                raise ConfigError(f"{share} is a share in [0, 1], not {merged[share]!r}")
        if int(merged.get("cache_features", 0)) and not merged.get("freeze_cnn"):
            raise ConfigError("cache_features needs freeze_cnn=true: only frozen CNNs give "
                              "features that stay valid while the rest trains")
        if merged.get("model") == "snippet":
            if merged.get("freeze_cnn"):
                raise ConfigError("freeze_cnn is for the passage model (RNN-FZ), not the "
                                  "snippet model, whose CNNs are all it has")
            merged = {**SNIPPET_DEFAULTS, **merged}
        return cls(**merged)


def _parse(text: str, kind: str, key: str):
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        return text
    except ValueError:
        raise ConfigError(f"{key}={text!r}: expected {kind}") from None
