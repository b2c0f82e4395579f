"""Train the passage model: AdamW, random passages each epoch, LR halved on a validation-MRR
plateau, best checkpoint by validation MRR, resumable, single process or DDP (torchrun).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import ConcatDataset, DataLoader

from scorelink import checkpoint
from scorelink.data.store import Dataset
from scorelink.errors import CheckpointError, ConfigError, DatasetError
from scorelink.evaluate.metrics import retrieval_metrics
from scorelink.evaluate.retrieval import eval_records, rank_passages, rank_records
from scorelink.models.passage import PassageModel, PassageModelConfig, widen_snippets
from scorelink.models.snippet_model import SnippetModel, SnippetModelConfig
from scorelink.precision import use_bf16
from scorelink.train.batches import EpochSampler, PassageSnippets, PieceSampler, collate
from scorelink.train.config import TrainConfig
from scorelink.train.features import (
    FeatureCache,
    cnn_fingerprint,
    random_views,
    summarize_features,
)
from scorelink.train.loss import PassageLoss
from scorelink.train.snippet_batches import NoteSnippets

LOG_FIELDS = ("epoch", "step", "train_loss", "valid_a2s_MRR", "valid_s2a_MRR", "valid_MRR",
              "lr", "seconds", "passages_per_s")


def build_model(config: TrainConfig) -> PassageModel | SnippetModel:
    if config.model == "snippet":
        model = SnippetModel(SnippetModelConfig.preset(config.preset,
                                                       embed_dim=config.embed_dim))
        if config.init_from:  # warm start from another snippet model (BL)
            start = checkpoint.load_model(config.init_from, kind="snippet")[0]
            if start.config != model.config:
                raise ConfigError(
                    f"{config.init_from} is a {start.config.to_dict()} model, but this run asks "
                    f"for {model.config.to_dict()}: set preset/embed_dim to match it")
            model = start.train()
    elif (config.init_from and not config.init_cnns_only
          and checkpoint.read(config.init_from).get("kind") == "rnn"):
        # warm start: a passage model goes on training from all of another one's weights; the
        # run's settings must describe that model, or its checkpoints would describe another.
        # Its CNN shape (a CCA layer too: RNN-FZ-CCA -> RNN-FT-CCA) comes with the weights.
        model = checkpoint.load_model(config.init_from, kind="rnn")[0].train()
        if config.snippet_dim and config.snippet_dim != model.config.snippet_dim:
            try:
                model = widen_snippets(model, config.snippet_dim, seed=config.seed)
            except ValueError as error:  # narrower than the checkpoint, or a CCA layer
                raise ConfigError(f"snippet_dim={config.snippet_dim} for {config.init_from}: "
                                  f"{error}") from None
        shape = {"channels": model.config.channels, "snippet_dim": model.config.snippet_dim,
                 "cca": model.config.cca}
        wanted = PassageModelConfig.preset(config.preset, embed_dim=config.embed_dim,
                                           rnn=config.rnn, **shape)
        if model.config != wanted:
            raise ConfigError(
                f"{config.init_from} is a {model.config.to_dict()} model, but this run asks for "
                f"{wanted.to_dict()}: set preset/embed_dim/rnn to match it")
    else:
        shape = _cnn_shape(config.init_from) if config.init_from else {}
        if config.snippet_dim:
            if shape.get("snippet_dim", config.snippet_dim) != config.snippet_dim:
                raise ConfigError(f"{config.init_from}'s CNNs give {shape['snippet_dim']}-d "
                                  f"snippet vectors, not {config.snippet_dim}: only a whole "
                                  "passage model is widened")
            shape["snippet_dim"] = config.snippet_dim
        model = PassageModel(PassageModelConfig.preset(config.preset, embed_dim=config.embed_dim,
                                                       rnn=config.rnn, **shape))
        if config.init_from:
            init_cnns(model, config.init_from)
    if config.freeze_cnn:
        for tower in (model.sheet, model.audio):
            tower.cnn.requires_grad_(False)
    return model


def _cnn_shape(path: str) -> dict:
    """The CNN shape of the checkpoint the passage model starts from, so its weights fit."""
    payload = checkpoint.read(path)
    shape = payload["model_config"]
    dim = shape["embed_dim"] if payload.get("kind") == "snippet" else shape["snippet_dim"]
    return {"channels": tuple(shape["channels"]), "snippet_dim": dim,
            "cca": bool(shape.get("cca", False))}


def init_cnns(model: PassageModel, path: str) -> None:
    """Copy the snippet CNNs (and CCA layers) of another checkpoint (RNN-FT / RNN-FZ)."""
    payload = checkpoint.read(path)
    cnn = {k: v for k, v in payload["state_dict"].items()
           if ".cnn." in f".{k}" or ".cca." in f".{k}"}
    if not cnn:
        raise CheckpointError(f"{path} has no snippet CNN weights")
    missing = model.load_state_dict(cnn, strict=False)
    if missing.unexpected_keys:
        raise CheckpointError(f"{path}: CNN weights do not fit ({missing.unexpected_keys[:3]})")


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over every trainable parameter (the GRU included: the authors' code lost it)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _hardware(device: torch.device, world: int) -> str:
    """What trains this run, for the record in its checkpoints."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                     if line.startswith("model name")), platform.processor() or "CPU")
        name += f", {torch.get_num_threads()} threads"
    return f"{world} x {name}" if world > 1 else name


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _training_parts(folders: list[str]) -> list[tuple[str, Dataset, list[dict]]]:
    """(folder, its dataset, its training records) for each folder; the first one validates.

    A piece that another folder puts in validation or test must not be trained on: the same
    piece (by name) in two folders is taken for the same music. A folder may hold validation
    passages alone (`data build --only-split valid`, e.g. the validation pieces played by
    another piano): it only validates.
    """
    if len({str(Path(f).resolve()) for f in folders}) < len(folders):
        raise ConfigError(f"a dataset folder is given twice: {', '.join(folders)}")
    datasets = [Dataset(f) for f in folders]
    held_out = {r["piece"]: (f, r["split"]) for f, ds in zip(folders, datasets, strict=True)
                for r in ds if r["split"] != "train"}
    parts = []
    for folder, ds in zip(folders, datasets, strict=True):
        records = ds.records(split="train")
        if not records and not ds.records(split="valid"):
            raise DatasetError(f"{folder} has no training or validation passages")
        leaks = sorted({r["piece"] for r in records} & set(held_out))
        if leaks:
            other, split = held_out[leaks[0]]
            raise DatasetError(f"{folder} trains on {len(leaks)} piece(s) that {other} holds "
                               f"out for {split} (e.g. {leaks[0]}); a piece belongs to one split")
        parts.append((folder, ds, records))
    return parts


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """`Trainer(config).fit()`; rank 0 writes RUN/{config.json, log.csv, last.pt, best.pt}."""

    def __init__(self, config: TrainConfig):
        if not config.data or not config.out:
            raise ConfigError("train needs data (a dataset folder) and out (a run folder)")
        self.config = config
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = _device(config)
        # decided once: bfloat16 autocast on CUDA, and on a CPU that runs it natively (bf16)
        self.bf16 = self.device.type == "cuda" or use_bf16(config.bf16)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.out = Path(config.out)
        parts = _training_parts(config.folders())
        rng = np.random.default_rng(config.seed)
        total = sum(len(records) for _, _, records in parts)
        if 0 < config.train_passages < total:  # a seeded subset, drawn over every folder
            keep = set(rng.choice(total, config.train_passages, replace=False).tolist())
            subset, first = [], 0
            for folder, ds, records in parts:
                subset.append((folder, ds, [r for j, r in enumerate(records, start=first)
                                            if j in keep]))
                first += len(records)
            parts = subset
        self.train_records = [r for _, _, records in parts for r in records]
        if not self.train_records:
            raise DatasetError(f"no training passages in {', '.join(config.folders())}")
        # (folder, its validation passages) for each folder that validates
        self.valid_sets = []
        for folder, ds, _ in parts if config.valid_on == "all" else parts[:1]:
            if config.valid_on == "all" and not ds.records(split="valid"):
                continue  # a training-only folder (e.g. extra scores) has nothing to validate
            valid = eval_records(ds, split="valid")
            if len(valid) > config.valid_passages:
                valid = [valid[i] for i in sorted(rng.choice(len(valid), config.valid_passages,
                                                             replace=False))]
            self.valid_sets.append((folder, valid))
        self.valid_records = self.valid_sets[0][1]

        _seed_everything(config.seed)
        self.model = build_model(config).to(self.device)
        if config.channels_last:
            for tower in (self.model.sheet, self.model.audio):
                tower.cnn.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, config)
        # Polyak averaging (`ema`, not in the paper): validation, the learning-rate schedule
        # and best.pt see the weights averaged over the last ~1/(1 - ema) steps, BatchNorm's
        # statistics too, which move less from one epoch to the next than the raw weights.
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema),
                                  use_buffers=True) if config.ema else None)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.lr_factor, patience=config.patience,
            min_lr=config.min_lr)
        self.loss = PassageLoss(margin=config.margin, symmetric=config.symmetric,
                                hardest=config.hard_negatives, temperature=config.temperature)
        # The system each training passage shows: another rendition of it in the batch is no
        # negative (with four renditions of 1,011 chorale systems, about 1.5 pairs a batch).
        # Keyed by piece name, so one piece in two training folders counts as one.
        groups: dict = {}
        self.system_of = torch.tensor([groups.setdefault((r["piece"], r["system"]), len(groups))
                                       for r in self.train_records])
        self.epoch, self.step, self.best = 0, 0, -1.0
        sets, first = [], 0
        for folder, _, records in parts:
            if config.model == "snippet":
                sets.append(NoteSnippets(folder, records, augment=config.augment,
                                         timbre=config.timbre_augment))
            else:
                sets.append(PassageSnippets(folder, records, augment=config.augment,
                                            timbre=config.timbre_augment,
                                            tempo=config.tempo_augment,
                                            crop=config.crop_augment, scan=config.scan_augment,
                                            join=config.join_augment,
                                            room=config.room_augment,
                                            piano=config.piano_augment,
                                            fine_eq=config.fine_eq_augment,
                                            first_index=first))
            first += len(records)
        self.train_set = ConcatDataset(sets)
        # the snippet model's fixed-size snippets stack by default collation
        self.collate = None if config.model == "snippet" else collate
        if config.piece_batches:
            self.sampler = PieceSampler([r["piece"] for r in self.train_records],
                                        [r["system"] for r in self.train_records],
                                        config.passages_per_epoch, config.piece_batches,
                                        seed=config.seed, rank=self.rank, world=self.world)
        else:
            self.sampler = EpochSampler(len(self.train_set), config.passages_per_epoch,
                                        seed=config.seed, rank=self.rank, world=self.world)
        self._resume()
        self.features = self.valid_features = None
        if config.cache_features:
            if config.model != "rnn" or not config.freeze_cnn:
                raise ConfigError("cache_features needs the passage model with freeze_cnn=true")
            if self.world > 1:
                raise ConfigError("cache_features trains in one process (its epochs are cheap)")
            if len(self.valid_sets) > 1:
                raise ConfigError("cache_features validates on the first folder only: use "
                                  "valid_on=first")
            self.features = self._feature_cache("features.pt", self.train_set,
                                                config.cache_features)
            # validation too: the frozen CNNs' outputs of the validation passages, unaugmented
            self.valid_features = self._feature_cache(
                "valid-features.pt", PassageSnippets(config.data, self.valid_records), 1)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _feature_cache(self, name: str, dataset, views: int) -> FeatureCache:
        """The frozen CNNs' features of `dataset`'s passages (RUN/name, reused when it was made
        with the same CNN weights, views and passages)."""
        path = self.out / name
        if path.exists():
            cache = FeatureCache.load(path)
            if (cache.fingerprint, cache.views, len(cache)) == (
                    cnn_fingerprint(self.model), views, len(dataset)):
                return cache
        cache = FeatureCache.compute(
            self.model, dataset, views=views, batch_size=self.config.batch_size,
            workers=self.config.workers, seed=self.config.seed, device=self.device,
            autocast=self._autocast if self.bf16 else None,
            channels_last=self.config.channels_last, progress=self.rank == 0)
        self.out.mkdir(parents=True, exist_ok=True)
        cache.save(path)
        return cache

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def selected(self) -> PassageModel | SnippetModel:
        """The model that is validated and written to best.pt: the average, if one is kept."""
        return self.ema.module if self.ema is not None else self.model

    def _state(self, metrics: dict) -> dict:
        return {
            "train_config": self.config.to_dict(),
            "metrics": metrics,
            "epoch": self.epoch,
            "step": self.step,
            "best_valid_MRR": self.best,
            "hardware": _hardware(self.device, self.world),
            "precision": "bfloat16 autocast" if self.bf16 else "float32",
        }

    def _resume(self) -> None:
        last = self.out / "last.pt"
        if not last.exists():
            return
        payload = checkpoint.read(last)
        try:  # fields added since the checkpoint was written take their defaults
            saved = type(self.model.config)(**payload["model_config"]).to_dict()
        except (TypeError, ValueError):
            saved = payload["model_config"]
        if (payload["kind"], saved) != (self.model.kind, self.model.config.to_dict()):
            raise CheckpointError(f"{last} is of another model shape; use another --out")
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.ema is not None and "ema" in payload:  # else the average starts from here
            self.ema.load_state_dict(payload["ema"])
        self.epoch, self.step = payload["epoch"], payload["step"]
        self.best = payload["best_valid_MRR"]
        torch.set_rng_state(payload["torch_rng"])
        if self.rank == 0:
            print(f"resuming {self.out} after epoch {self.epoch} (best valid MRR {self.best:.3f})")

    def _save(self, metrics: dict, *, best: bool) -> None:
        if self.rank != 0:
            return
        state = self._state(metrics)
        extra = {"ema": self.ema.state_dict()} if self.ema is not None else {}
        checkpoint.save(self.out / "last.pt", self.model, optimizer=self.optimizer.state_dict(),
                        scheduler=self.scheduler.state_dict(), torch_rng=torch.get_rng_state(),
                        **extra, **state)
        if best:
            checkpoint.save(self.out / "best.pt", self.selected, **state)
        if self.config.keep_epochs:
            (self.out / "epochs").mkdir(exist_ok=True)
            checkpoint.save(self.out / "epochs" / f"epoch-{self.epoch:03d}.pt", self.selected,
                            **state)

    # -- loop ---------------------------------------------------------------------------------
    def _autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _inputs(self, batch: dict) -> tuple:
        fmt = torch.channels_last if self.config.channels_last else torch.contiguous_format
        sheet = batch["sheet"].to(self.device, memory_format=fmt)
        audio = batch["audio"].to(self.device, memory_format=fmt)
        if self.config.model == "snippet":
            return sheet, audio
        return sheet, batch["sheet_lengths"], audio, batch["audio_lengths"]

    def _batches(self):
        """(batch, forward) pairs of this epoch: from the data loader, or from the feature
        cache (then the towers' CNNs are skipped: their outputs are cached)."""
        if self.features is None:
            loader = DataLoader(
                self.train_set, batch_size=self.config.batch_size, sampler=self.sampler,
                collate_fn=self.collate,
                num_workers=self.config.workers, drop_last=True,
                persistent_workers=False, prefetch_factor=4 if self.config.workers else None)
            for batch in loader:
                yield batch, lambda b: self.net(*self._inputs(b))
            return
        views = torch.from_numpy(random_views(len(self.train_set), self.features.views,
                                              seed=self.config.seed, epoch=self.epoch))
        order = torch.tensor(list(self.sampler))
        size = self.config.batch_size
        for k in range(len(order) // size):  # drop_last, as the loader
            index = order[k * size:(k + 1) * size]
            batch = {**self.features.batch(index, views[index]), "index": index}
            yield batch, self._cached_forward

    def _cached_forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(summarize_features(tower, batch[side].to(self.device),
                                        batch[f"{side}_lengths"])
                     for side, tower in (("sheet", self.model.sheet), ("audio", self.model.audio)))

    def train_epoch(self) -> tuple[float, int]:
        from tqdm import tqdm

        self.sampler.set_epoch(self.epoch)
        self.net.train()
        if self.config.freeze_cnn:  # frozen means BatchNorm too: its running statistics stay
            for tower in (self.model.sheet, self.model.audio):
                tower.cnn.eval()
        losses, seen = [], 0
        bar = tqdm(self._batches(), desc=f"epoch {self.epoch + 1}", unit="batch",
                   total=len(self.sampler) // self.config.batch_size,
                   disable=self.rank != 0, leave=False)
        for batch, forward in bar:
            with self._autocast():
                sheet, audio = forward(batch)
            same = None if self.config.model == "snippet" else self.system_of[batch["index"]]
            loss = self.loss(sheet, audio, same=same)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            self.step += 1
            losses.append(loss.item())
            seen += len(batch["index"])
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if self.config.max_steps and self.step >= self.config.max_steps:
                break
        return float(np.mean(losses)) if losses else float("nan"), seen * self.world

    def validate(self) -> dict:
        if self.valid_features is not None:  # frozen CNNs: their cached outputs
            sheet, audio = self.valid_features.embed(self.selected, device=self.device)
            ranks = rank_passages(sheet, audio,
                                  [(r["piece"], r["system"]) for r in self.valid_records])
            return {d: retrieval_metrics(r) for d, r in ranks.items()}
        per_folder = {}
        for folder, records in self.valid_sets:  # each folder ranks among its own passages
            with self._autocast():
                ranks = rank_records(self.selected, folder, records, device=str(self.device))
            per_folder[folder] = {d: retrieval_metrics(r) for d, r in ranks.items()}
        if len(per_folder) == 1:
            return next(iter(per_folder.values()))
        # several: the selection figure is the plain mean over folders, each folder's own
        # metrics are kept beside it
        mean = {d: {"MRR": float(np.mean([m[d]["MRR"] for m in per_folder.values()]))}
                for d in ("a2s", "s2a")}
        return {**mean, "folders": per_folder}

    def fit(self) -> dict:
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))
        log_path = self.out / "log.csv"
        metrics: dict = {}
        while self.epoch < self.config.epochs:
            t0 = time.perf_counter()
            train_loss, seen = self.train_epoch()
            seconds = time.perf_counter() - t0
            self.epoch += 1
            metrics = self.validate() if self.rank == 0 else {}
            score = torch.tensor([(metrics["a2s"]["MRR"] + metrics["s2a"]["MRR"]) / 2
                                  if metrics else 0.0])
            if self.world > 1:
                dist.broadcast(score, 0)  # every rank steps its scheduler on rank 0's figure
            valid_mrr = float(score)
            self.scheduler.step(valid_mrr)
            improved = valid_mrr > self.best
            self.best = max(self.best, valid_mrr)
            row = {"epoch": self.epoch, "step": self.step, "train_loss": round(train_loss, 5),
                   "valid_a2s_MRR": round(metrics.get("a2s", {}).get("MRR", 0.0), 4),
                   "valid_s2a_MRR": round(metrics.get("s2a", {}).get("MRR", 0.0), 4),
                   "valid_MRR": round(valid_mrr, 4),
                   "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 1),
                   "passages_per_s": round(seen / seconds, 1)}
            if "folders" in metrics:  # valid_on=all: each folder's a2s/s2a MRR
                row["valid_folders"] = "; ".join(
                    f"{Path(f).name} {m['a2s']['MRR']:.4f}/{m['s2a']['MRR']:.4f}"
                    for f, m in metrics["folders"].items())
            self._save({"valid": metrics, **row}, best=improved)
            if self.rank == 0:
                new = not log_path.exists()
                with open(log_path, "a", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=LOG_FIELDS + (
                        ("valid_folders",) if "valid_folders" in row else ()))
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
                print(", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
            if self.config.max_steps and self.step >= self.config.max_steps:
                break
        if self.world > 1:
            dist.barrier()
        return metrics
