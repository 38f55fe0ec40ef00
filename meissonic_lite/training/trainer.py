"""The trainer: one loop that survives faults and scales out (chapter 6).

AdamW (weight decay 0.01, none on norms, biases and embeddings), warmup
then constant or cosine LR, gradient clipping, bf16 autocast, optional EMA;
a NaN/inf guard that skips bad steps and reloads the last good checkpoint
after K in a row (the paper's stability fix); atomic checkpoints and exact
resumption (every random draw is derived from (seed, step)); DDP through
torchrun (gloo on CPU, NCCL on GPU). It knows nothing of which stage it
runs: data, text conditioning and the model are given to it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..utils import autocast, warmup_cosine
from . import distributed as dist
from .checkpoint import (
    LATEST,
    check_same_model,
    load_checkpoint,
    remove_stale_temps,
    save_checkpoint,
)
from .objective import masked_ce, prepare_batch

Encode = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings of one training run."""

    steps: int = 1000
    batch_size: int = 32          # global batch (all processes together)
    lr: float = 3e-4
    warmup: int = 100
    schedule: str = "constant"    # or "cosine"
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 10.0
    cfg_dropout: float = 0.1
    bf16: bool = True
    ema: float | None = None      # e.g. 0.999
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 100
    sample_every: int = 0         # call `on_sample` every N steps (0: off)
    max_bad_steps: int = 3
    blob_masks: float = 0.0       # share of samples masked as blobs ...
    blob_start: int = 0           # ... from this step on
    label_smoothing: float = 0.0  # MaskGIT: 0.1 (chapter 6's levers)

    def __post_init__(self):
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"unknown schedule {self.schedule!r}; "
                             "allowed: constant, cosine")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if not 0.0 <= self.blob_masks <= 1.0:
            raise ValueError(f"blob_masks must be in [0, 1], got "
                             f"{self.blob_masks}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got "
                             f"{self.label_smoothing}")


def _config_defaults(model: nn.Module) -> dict:
    """The defaults of the model's config dataclass, if it has one."""
    cfg = getattr(model, "config", None)
    if not is_dataclass(cfg):
        return {}
    try:
        return asdict(type(cfg)())
    except TypeError:  # a config without defaults for every field
        return {}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices; spare norms, biases and embeddings (ndim < 2 or
    an nn.Embedding / learned position table)."""
    no_decay = {id(m.weight) for m in model.modules()
                if isinstance(m, nn.Embedding)}
    decay, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or id(p) in no_decay or "pos_embed" in name:
            rest.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0}]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then constant or cosine decay to 10%."""
    return warmup_cosine(step, cfg.steps, cfg.warmup, 0.1, cfg.schedule)


def batch_indices(step: int, batch: int, n: int, seed: int) -> list[int]:
    """The dataset indices of global batch `step`: epoch-wise shuffles."""
    out, k = [], step * batch
    perm_epoch, perm = -1, None
    for j in range(k, k + batch):
        epoch = j // n
        if epoch != perm_epoch:
            g = torch.Generator().manual_seed(seed * 7919 + epoch)
            perm, perm_epoch = torch.randperm(n, generator=g), epoch
        out.append(int(perm[j % n]))
    return out


def _drop_log_after(path: Path, step: int) -> None:
    """Forget log lines past the checkpoint we resume from: those steps
    run again, and the loss curve must not count them twice."""
    if not path.is_file():
        return
    keep = [x for x in path.read_text().splitlines()
            if x and json.loads(x)["step"] <= step]
    path.write_text("".join(x + "\n" for x in keep))


class Trainer:
    """Train `model` on items {tokens, micro_conds, caption | states}."""

    def __init__(self, model: nn.Module, dataset, cfg: TrainConfig,
                 out_dir: str | Path, null: tuple[torch.Tensor,
                                                  torch.Tensor],
                 encode: Encode | None = None,
                 model_config: dict | None = None,
                 extra_params: list[nn.Parameter] | None = None,
                 device: torch.device | str = "cpu"):
        self.cfg, self.dataset = cfg, dataset
        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.rank, self.world = dist.rank(), dist.world_size()
        if cfg.batch_size % self.world:
            raise ValueError(f"global batch {cfg.batch_size} must divide "
                             f"by the {self.world} processes")
        self.raw = model.to(self.device)
        self.ddp = dist.wrap(model, self.device)
        groups = param_groups(model, cfg.weight_decay)
        if extra_params:       # e.g. the text encoder in stage 4
            groups.append({"params": extra_params, "weight_decay": 0.0,
                           "lr": cfg.lr * 0.1})
        self.opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, cfg))
        self.ema = None
        if cfg.ema:
            self.ema = torch.optim.swa_utils.AveragedModel(
                model, multi_avg_fn=torch.optim.swa_utils
                .get_ema_multi_avg_fn(cfg.ema))
        self.null = tuple(t.to(self.device) for t in null)
        self.encode, self.model_config = encode, model_config or {}
        self.step, self.bad, self.reloads = 0, 0, 0
        self.train_seconds = 0.0   # time in training steps, over resumes
        self.inject_nan: set[int] = set()     # test hook: fault injection
        die = os.environ.get("MEISSONIC_LITE_DIE_AT_STEP")
        self.die_at = int(die) if die else None

    # ------------------------------------------------------ checkpoints
    def state(self) -> dict:
        """Everything needed to resume exactly."""
        return {"model": self.raw.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict(), "step": self.step,
                "reloads": self.reloads, "train_config": asdict(self.cfg),
                "train_seconds": self.train_seconds,
                "model_config": self.model_config,
                "ema": self.ema.state_dict() if self.ema else None}

    def save(self) -> None:
        """Rank 0 writes `latest.pt` atomically."""
        if self.rank == 0:
            save_checkpoint(self.out / LATEST, self.state())
        dist.barrier()

    def load(self, path: str | Path | None = None) -> None:
        """Restore model, optimizer, scheduler and step from a checkpoint."""
        path = Path(path) if path else self.out / LATEST
        ck = load_checkpoint(path)
        check_same_model(ck["model_config"], self.model_config, path,
                         _config_defaults(self.raw))
        self.raw.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        self.sched.load_state_dict(ck["sched"])
        self.step, self.reloads = ck["step"], ck.get("reloads", 0)
        self.train_seconds = ck.get("train_seconds", 0.0)
        if self.ema and ck.get("ema"):
            self.ema.load_state_dict(ck["ema"])

    # ------------------------------------------------------------ steps
    def _batch(self, step: int):
        per = self.cfg.batch_size // self.world
        rows = slice(self.rank * per, (self.rank + 1) * per)
        idx = batch_indices(step, self.cfg.batch_size, len(self.dataset),
                            self.cfg.seed)[rows]
        items = [self.dataset[i] for i in idx]
        tokens = torch.stack([it["tokens"] for it in items]).long()
        micro = torch.stack([it["micro_conds"] for it in items]).float()
        if "states" in items[0]:
            states = torch.stack([it["states"] for it in items])
            pooled = torch.stack([it["pooled"] for it in items])
        else:
            states, pooled = self.encode([it["caption"] for it in items])
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        dev = self.device
        blob = self.cfg.blob_masks if step >= self.cfg.blob_start else 0.0
        return prepare_batch(tokens.to(dev), states.to(dev), pooled.to(dev),
                             micro.to(dev), self.null, self.raw.config.mask_id,
                             self.cfg.cfg_dropout, g, self.cfg.batch_size,
                             rows, blob)

    def train_step(self) -> dict:
        """One optimisation step (or a skipped one); returns its log."""
        b = self._batch(self.step)
        with autocast(self.device, self.cfg.bf16):
            logits = self.ddp(b.input_ids, b.states, b.pooled,
                              b.micro_conds, b.level)
        loss = masked_ce(logits, b.labels, b.global_masked,
                         self.cfg.label_smoothing) * self.world
        if self.step in self.inject_nan:
            loss = loss * float("nan")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.opt.param_groups for p in g["params"]]
        gnorm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        ok = bool(torch.isfinite(loss)) and bool(torch.isfinite(gnorm))
        if ok:
            self.opt.step()
            if self.ema:
                self.ema.update_parameters(self.raw)
            self.bad = 0
        else:
            self.opt.zero_grad(set_to_none=True)
            self.bad += 1
        self.sched.step()
        self.step += 1
        log = {"step": self.step, "loss": float(loss.detach()) / self.world,
               "lr": self.sched.get_last_lr()[0], "grad_norm": float(gnorm),
               "skipped": not ok, "dropped": int(b.dropped.sum())}
        if self.bad >= self.cfg.max_bad_steps:
            self._recover()
            log["reloaded"] = True
        return log

    def _sample(self, on_sample: Callable[[int, nn.Module], None]) -> None:
        was = self.raw.training
        self.raw.eval()
        with torch.no_grad():
            on_sample(self.step, self.raw)
        self.raw.train(was)

    def _recover(self) -> None:
        """K bad steps in a row: reload the last good checkpoint, go on."""
        step, reloads, spent = self.step, self.reloads + 1, \
            self.train_seconds
        self.load()
        self.step, self.reloads, self.bad = step, reloads, 0
        self.train_seconds = spent          # time only ever adds up

    # ------------------------------------------------------------- loop
    def fit(self, resume: bool = False,
            on_log: Callable[[dict], None] | None = None,
            on_sample: Callable[[int, nn.Module], None] | None = None
            ) -> list[dict]:
        """Run to `cfg.steps`, checkpointing and logging on the way;
        rank 0 calls `on_sample(step, model)` every `sample_every` steps
        (e.g. to draw a sample grid) with the model in eval mode."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            remove_stale_temps(self.out)
        if resume:
            self.load()
            if self.rank == 0:
                _drop_log_after(self.out / "log.jsonl", self.step)
        elif self.step == 0:
            self.save()                       # a good state to fall back to
        logs, t0, n0 = [], time.perf_counter(), self.step
        bar = tqdm(total=self.cfg.steps, initial=self.step,
                   disable=self.rank != 0, desc="train")
        with open(self.out / "log.jsonl", "a") if self.rank == 0 \
                else open(os.devnull, "w") as f:
            while self.step < self.cfg.steps:
                if self.die_at is not None and self.step == self.die_at:
                    os.kill(os.getpid(), signal.SIGKILL)   # test hook
                t_step = time.perf_counter()
                log = self.train_step()
                self.train_seconds += time.perf_counter() - t_step
                dt = time.perf_counter() - t0
                log["images_per_s"] = (self.step - n0) * \
                    self.cfg.batch_size / max(dt, 1e-9)
                logs.append(log)
                bar.update(1)
                bar.set_postfix(loss=f"{log['loss']:.3f}")
                if self.step % self.cfg.log_every == 0 or log["skipped"]:
                    f.write(json.dumps(log) + "\n")
                    f.flush()
                    if on_log:
                        on_log(log)
                if self.step % self.cfg.ckpt_every == 0 and self.bad == 0:
                    self.save()
                every = self.cfg.sample_every
                if on_sample and self.rank == 0 and every and (
                        self.step % every == 0 or
                        self.step == self.cfg.steps):
                    self._sample(on_sample)
            if self.bad == 0:
                self.save()
        bar.close()
        return logs
