"""Self-describing checkpoints: weights + model config + preprocessing + training config + metrics.

A model is rebuilt from the checkpoint alone. The shipped default model lives inside the
package (`scorelink/weights/`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

from scorelink import constants as C
from scorelink.errors import CheckpointError

FORMAT = "scorelink-checkpoint"
VERSION = 1
# Models that ship inside the package, by the name `--checkpoint NAME` takes; SHIPPED is the
# default of every command.
# piano: trained on MSMD's piano music (docs/paper-comparison.md); chorales: on the built-in
# corpus, the default until 2026-12-04 (docs/model.md).
SHIPPED_MODELS = {"piano": "rnn-piano.pt", "chorales": "rnn-chorales.pt"}
SHIPPED = SHIPPED_MODELS["piano"]


def preprocessing() -> dict[str, Any]:
    """The signal and image contract a model was trained with."""
    names = ("SAMPLE_RATE", "FPS", "FRAME_SIZE", "N_BINS", "FMIN", "FMAX", "BANDS_PER_OCTAVE",
             "PAGE_WIDTH", "STRIP_HEIGHT", "SHEET_SCALE", "SHEET_SNIPPET_WIDTH",
             "SHEET_SNIPPET_HOP", "SHEET_LEFT_PAD", "AUDIO_SNIPPET_FRAMES", "AUDIO_SNIPPET_HOP")
    return {n: getattr(C, n) for n in names}


def save(path: str | Path, model: torch.nn.Module, **info: Any) -> None:
    """Write atomically: format, version, kind, model_config, preprocessing, state_dict, info."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": model.kind,
        "model_config": model.config.to_dict(),
        "preprocessing": preprocessing(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **info,
    }
    write(payload, path)


def write(payload: dict[str, Any], path: str | Path) -> None:
    """torch.save atomically: to PATH.tmp, then renamed over PATH."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint file (CheckpointError if it is not one of ours)."""
    path = resolve(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on a bad file
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a scorelink checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} is checkpoint version {payload.get('version')}; "
                              f"this scorelink reads version {VERSION}")
    if payload.get("preprocessing") != preprocessing():
        raise CheckpointError(f"{path} was trained with other preprocessing constants")
    return payload


def load_model(path: str | Path | None = None, *, kind: str | None = None):
    """(model in eval mode, checkpoint dict). path=None: the shipped default model.

    kind: "rnn" or "snippet" to insist on one; None accepts either.
    """
    from scorelink.models.passage import PassageModel, PassageModelConfig
    from scorelink.models.snippet_model import SnippetModel, SnippetModelConfig

    path = shipped_path() if path is None else resolve(path)
    payload = read(path)
    classes = {"rnn": (PassageModel, PassageModelConfig),
               "snippet": (SnippetModel, SnippetModelConfig)}
    if payload.get("kind") not in classes or (kind and payload["kind"] != kind):
        raise CheckpointError(f"{path} holds a {payload.get('kind')!r} model, not "
                              f"{kind or ' or '.join(classes)!r}")
    model_cls, config_cls = classes[payload["kind"]]
    try:
        model = model_cls(config_cls(**payload["model_config"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad model config ({exc})") from exc
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model config ({exc})") from exc
    return model.eval(), payload


def export(source: str | Path, dest: str | Path, **extra: Any) -> dict[str, Any]:
    """Copy a checkpoint without its resume state (optimizer, scheduler, RNG): for shipping."""
    payload = read(source)
    for key in ("optimizer", "scheduler", "torch_rng"):
        payload.pop(key, None)
    payload.update(extra, exported_from=str(source))
    write(payload, dest)
    return payload


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or the name of a shipped model ("chorales") -> its file."""
    if Path(path).exists():
        return Path(path)
    if str(path) in SHIPPED_MODELS:
        return shipped_path(SHIPPED_MODELS[str(path)])
    raise CheckpointError(f"checkpoint {path} does not exist (shipped models by name: "
                          f"{', '.join(SHIPPED_MODELS)})")


def shipped_path(name: str = SHIPPED) -> Path:
    path = Path(str(resources.files("scorelink") / "weights" / name))
    if not path.exists():
        raise CheckpointError(
            f"no shipped model at {path}; pass --checkpoint (train one with `scorelink train`)"
        )
    return path
