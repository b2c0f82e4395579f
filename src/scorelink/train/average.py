"""Average the weights of checkpoints of one model shape (stochastic weight averaging, model soups).

    python -m scorelink.train.average --out AVG.pt RUN/epochs/epoch-01[0-9].pt
    python -m scorelink.train.average --out AVG.pt A/best.pt B/best.pt --weights 2,1

Checkpoints trained from one starting point with a small learning rate lie in one basin of the
loss, and the mean of their weights is often better than any of them (Izmailov et al. 2018,
"Averaging weights leads to wider optima and better generalization"; Wortsman et al. 2022,
"Model soups"). torch.optim.swa_utils averages during training; this averages files that are
already written, which is what choosing the epochs afterwards needs. BatchNorm's running
statistics are averaged as the weights are (the counters keep the first checkpoint's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scorelink import checkpoint
from scorelink.errors import CheckpointError


def average(paths: list[str | Path], weights: list[float] | None = None) -> dict:
    """The weighted mean of the checkpoints' weights, as a checkpoint payload (the first one's
    configs, `averaged_from` naming the files and their weights)."""
    if not paths:
        raise CheckpointError("nothing to average: give at least one checkpoint")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise CheckpointError(f"{len(paths)} checkpoints need as many weights >= 0 with a "
                              f"positive sum, not {weights}")
    payloads = [checkpoint.read(p) for p in paths]
    first = payloads[0]
    for path, payload in zip(paths[1:], payloads[1:], strict=True):
        if (payload["kind"], payload["model_config"]) != (first["kind"], first["model_config"]):
            raise CheckpointError(f"{path} is of another model shape than {paths[0]}")
    total = sum(weights)
    state = {}
    for key, value in first["state_dict"].items():
        if value.is_floating_point():
            state[key] = sum(w / total * p["state_dict"][key].double()
                             for w, p in zip(weights, payloads, strict=True)).to(value.dtype)
        else:  # BatchNorm's num_batches_tracked
            state[key] = value.clone()
    info = {k: v for k, v in first.items()
            if k not in ("state_dict", "optimizer", "scheduler", "torch_rng", "ema", "metrics")}
    info.update(state_dict=state, averaged_from=[
        {"path": str(p), "weight": w, "epoch": payload.get("epoch")}
        for p, w, payload in zip(paths, weights, payloads, strict=True)])
    return info


def write(payload: dict, dest: str | Path) -> None:
    """Save atomically (checkpoint.write), then check that the file loads as a model."""
    checkpoint.write(payload, dest)
    checkpoint.load_model(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorelink.train.average",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files of one model shape")
    parser.add_argument("--out", required=True, help="the averaged checkpoint to write")
    parser.add_argument("--weights", help="comma-separated weight of each checkpoint "
                        "(default: equal)")
    args = parser.parse_args(argv)
    try:
        weights = [float(w) for w in args.weights.split(",")] if args.weights else None
        write(average(args.checkpoints, weights), args.out)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: the mean of {len(args.checkpoints)} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
