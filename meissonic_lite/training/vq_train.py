"""Train the VQ tokenizer on Shapes-world renders; measure and ship it
(chapter 2).

`meissonic-lite train-vq --out runs/vq --export` fills a `VQTrainConfig`
and calls `run`: it renders a fixed pool of training images at every
ladder size (seeded, cached in the run dir), trains on random crops with
MSE + commitment loss under bf16 autocast, logs JSONL, checkpoints
atomically (resume with `resume=True`), and with `export=True` writes the
fp16 weights and the vq.json manifest after re-measuring every quality
bar (`vq_metrics`, whose measurements are importable from here too).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import utils
from ..models.vq import (
    DEFAULT_WEIGHTS,
    VQConfig,
    VQModel,
    from_pretrained,
    save_weights,
)
from ..world.dataset import make_example
from .vq_metrics import (
    EVAL_SEED,
    TRAIN_SEED,
    final_metrics,
    held_out,
    ladder,
    reconstruct,
)

__all__ = [
    "DECODER_LOSSES", "VQTrainConfig", "decoder_loss", "edge_l1", "export",
    "frozen_tokens_forward", "render_pool", "run", "sample_crops", "train",
]


@dataclass
class VQTrainConfig:
    """One train-vq run (the `meissonic-lite train-vq` options, with the
    same names and defaults)."""

    out: str = "runs/vq"           # run dir: checkpoint, log, render pool
    steps: int = 6000
    batch: int = 64
    crop: int = 0                  # training crop px (0: smallest ladder)
    lr: float = 2e-3
    factor: int = 4
    num_codes: int = 512
    code_dim: int = 16
    channels: str = "32,64,64"
    encoder: str = "patch"         # "patch" (token = its own f x f px)
    #                                or "conv" (VQGAN-like)
    pool: int = 4000               # training renders per ladder size
    p_clean: float = 0.5           # share of clean renders
    seed: int = 0
    bf16: bool = True              # bf16 autocast in training
    resume: bool = False
    log_every: int = 50
    eval_every: int = 500
    ckpt_every: int = 500
    export: bool = False           # write weights + manifest after training
    weights: str = str(DEFAULT_WEIGHTS)
    fp16: bool = True              # ship fp16 weights (False: fp32)
    final_n: int = 200
    final_judge: int = 500
    final_usage: int = 2000
    finetune_decoder: str | None = None   # start from these weights and
    #                                       train only the decoder
    decoder_loss: str = "sharp"    # one of DECODER_LOSSES
    command: str = ""              # the command line, for the manifest


# ---- data ---------------------------------------------------------------
def render_pool(n: int, size: int, seed: int, p_clean: float,
                progress: bool = True) -> torch.Tensor:
    """`n` world examples at `size` px as uint8 (n, 3, size, size)."""
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in tqdm(range(n), desc=f"render {size}px", disable=not progress):
        ex = make_example(seed + size, i, size, "short", p_clean,
                          degrade=p_clean < 1.0)
        out[i] = torch.from_numpy(np.array(ex.image)).permute(2, 0, 1)
    return out


def sample_crops(pools: list[torch.Tensor], batch: int, crop: int,
                 gen: torch.Generator) -> torch.Tensor:
    """A batch of random `crop`-px crops from random pool images, [0,1]."""
    out = torch.empty(batch, 3, crop, crop)
    which = torch.randint(0, len(pools), (batch,), generator=gen)
    for b in range(batch):
        pool = pools[int(which[b])]
        i = int(torch.randint(0, pool.shape[0], (1,), generator=gen))
        s = pool.shape[-1]
        y, x = (int(v) for v in torch.randint(0, s - crop + 1, (2,),
                                              generator=gen))
        out[b] = pool[i, :, y:y + crop, x:x + crop].float() / 255.0
    return out


# ---- training -----------------------------------------------------------
def _lr(step: int, total: int, base: float, warm: int = 200) -> float:
    return base * utils.warmup_cosine(step, total, warm, floor=0.1)


def edge_l1(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal and vertical pixel differences: punishes
    rounded corners and soft edges, which MSE forgives."""
    def grads(t):
        return t[..., :, 1:] - t[..., :, :-1], t[..., 1:, :] - t[..., :-1, :]
    (rx, ry), (xx, xy) = grads(rec), grads(x)
    return (rx - xx).abs().mean() + (ry - xy).abs().mean()


DECODER_LOSSES = {"sharp": "mse + l1 + edge_l1", "mse": "mse"}


def decoder_loss(rec: torch.Tensor, x: torch.Tensor, kind: str = "sharp"
                 ) -> torch.Tensor:
    """Fine-tune loss. 'sharp': MSE + L1 (flat colours: L1's optimum is
    the median, not a blend) + edge L1 (sharp corners); 'mse': MSE only."""
    if kind not in DECODER_LOSSES:
        raise ValueError(f"unknown decoder loss {kind!r}: one of "
                         f"{', '.join(DECODER_LOSSES)}")
    mse = F.mse_loss(rec, x)
    if kind == "mse":
        return mse
    return mse + (rec - x).abs().mean() + edge_l1(rec, x)


def frozen_tokens_forward(model: VQModel, x: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder fine-tune pass: tokens from the frozen encoder + codebook
    (so every token cache stays valid), gradients only in the decoder.
    Returns (reconstruction, tokens)."""
    with torch.no_grad():
        idx = model.encode(x)
        zq = model.quantizer.embed(idx)
    return (model.decoder(zq) + 1) / 2, idx


def train(cfg: VQTrainConfig) -> VQModel:
    """Train (or resume) a VQ model as `cfg` says; return it."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    utils.set_seed(cfg.seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    finetune = bool(cfg.finetune_decoder)
    if finetune:                  # start from shipped weights, decoder only
        model = from_pretrained(cfg.finetune_decoder)
        mcfg = model.config
        model.encoder.requires_grad_(False)
        params = list(model.decoder.parameters())
    else:
        mcfg = VQConfig(factor=cfg.factor, num_codes=cfg.num_codes,
                        code_dim=cfg.code_dim, channels=tuple(
                            int(c) for c in cfg.channels.split(",")),
                        encoder=cfg.encoder)
        model = VQModel(mcfg)
        params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed)
    step, wall, history = 0, 0.0, []
    ckpt = out / "ckpt.pt"
    if cfg.resume and ckpt.is_file():
        st = torch.load(ckpt, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        step, wall = st["step"], st["wall"]
        history = st["history"]
        model.base_manifest = st.get("base")
        print(f"resumed from {ckpt} at step {step}")
    elif finetune:                   # the base model's own recipe first
        man = Path(cfg.finetune_decoder).with_suffix(".json")
        if man.is_file():
            base = json.loads(man.read_text())
            history = [base["command"]]
            model.base_manifest = base
    if cfg.command:
        history.append(cfg.command)
    pool_path = out / "pool.pt"
    sizes = ladder(mcfg.factor)
    if pool_path.is_file():
        pools = torch.load(pool_path)
    else:
        pools = [render_pool(cfg.pool, s, TRAIN_SEED, cfg.p_clean)
                 for s in sizes]
        utils.atomic_torch_save(pool_path, pools)
    crop = cfg.crop or sizes[0]
    pools = [p for p in pools if p.shape[-1] >= crop]   # crops must fit
    val = held_out(64, sizes[1])
    log = open(out / "log.jsonl", "a")  # noqa: SIM115 (closed below)
    bar = tqdm(total=cfg.steps, initial=step, desc="train-vq")
    model.train()
    if finetune:
        model.encoder.eval()
        model.quantizer.eval()            # no EMA updates: codes frozen
    while step < cfg.steps:
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg.steps, cfg.lr)
        x = sample_crops(pools, cfg.batch, crop, gen)
        with utils.autocast(torch.device("cpu"), cfg.bf16):
            if finetune:
                rec, idx = frozen_tokens_forward(model, x)
            else:
                rec, idx, vq_loss = model(x, gen)
        mse = F.mse_loss(rec.float(), x)
        if finetune:
            loss = decoder_loss(rec.float(), x, cfg.decoder_loss)
        else:
            loss = mse + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        wall += time.perf_counter() - t0
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            used = torch.bincount(idx.flatten(), minlength=mcfg.num_codes)
            lv, mv = loss.item(), mse.item()
            rec_ = {"step": step, "loss": round(lv, 5),
                    "mse": round(mv, 6),
                    "psnr_batch": round(-10 * math.log10(mv), 3),
                    "codes_in_batch": int((used > 0).sum()),
                    "lr": round(opt.param_groups[0]["lr"], 6),
                    "wall_s": round(wall, 1)}
            if step % cfg.eval_every == 0 or step == cfg.steps:
                model.eval()
                rec_["val_psnr"] = round(float(-10 * torch.log10(
                    (reconstruct(model, val) - val).pow(2).mean())), 3)
                model.decoder.train(True)
                if not finetune:
                    model.train()
            log.write(json.dumps(rec_) + "\n")
            log.flush()
            bar.set_postfix(psnr=rec_["psnr_batch"],
                            codes=rec_["codes_in_batch"])
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            utils.atomic_torch_save(ckpt, {"model": model.state_dict(),
                              "opt": opt.state_dict(),
                              "gen": gen.get_state(), "step": step,
                              "wall": wall, "config": mcfg.to_dict(),
                              "base": getattr(model, "base_manifest", None),
                              "args": asdict(cfg), "history": history})
    bar.close()
    log.close()
    model.eval()
    model.train_wall_s, model.train_steps = wall, step
    model.history = history
    return model


def _curve(log: Path) -> list[list[float]]:
    """[step, val_psnr] pairs from a run's JSONL log (for the book)."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [[r["step"], r["val_psnr"]] for r in rows if "val_psnr" in r]


def export(model: VQModel, cfg: VQTrainConfig) -> dict:
    """Measure every bar on the fp16 weights; write them + the manifest."""
    path = Path(cfg.weights)
    save_weights(model, path, torch.float16 if cfg.fp16 else torch.float32)
    shipped = from_pretrained(path)
    metrics = final_metrics(shipped, cfg.final_n, cfg.final_judge,
                            cfg.final_usage)
    base = getattr(model, "base_manifest", None)
    steps, wall = model.train_steps, model.train_wall_s
    if base:                     # a decoder fine-tune of a shipped model
        steps, wall = steps + base["steps"], wall + base["wall_time_s"]
    manifest = {
        "command": " && ".join(model.history),
        "config": model.config.to_dict(),
        "seed": cfg.seed,
        "data": {"world_train_seed": TRAIN_SEED, "eval_seed": EVAL_SEED,
                 "sizes": list(ladder(model.config.factor)),
                 "pool_per_size": cfg.pool, "p_clean": cfg.p_clean,
                 "crop": cfg.crop or ladder(model.config.factor)[0],
                 "batch": cfg.batch,
                 "n_images_seen": model.train_steps * cfg.batch},
        "steps": steps,
        "wall_time_s": round(wall, 1),
        "final_metrics": metrics,
        "curve": base["curve"] if base else _curve(
            Path(cfg.out) / "log.jsonl"),
        "params": model.num_params(),
        "dtype": "float16" if cfg.fp16 else "float32",
        "sha256": shipped.weights_sha256,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "machine": platform.machine(),
    }
    if base:       # data: the base run's; the fine-tune's go with it
        tuned = manifest["data"]
        manifest["data"] = dict(base["data"])
        manifest["data"]["n_images_seen"] += tuned["n_images_seen"]
        manifest["decoder_finetune"] = {
            "steps": model.train_steps, "lr": cfg.lr,
            "wall_time_s": round(model.train_wall_s, 1),
            "loss": f"{DECODER_LOSSES[cfg.decoder_loss]} (decoder only; "
                    "encoder and codebook frozen, so tokens are unchanged)",
            "data": tuned,
            "curve": _curve(Path(cfg.out) / "log.jsonl"),
            "base_final_metrics": base["final_metrics"],
            "base_sha256": base["sha256"]}
    utils.atomic_write_bytes(path.with_suffix(".json"),
                       (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def run(cfg: VQTrainConfig) -> None:
    """Train, then (with `export`) write and report the shipped model."""
    model = train(cfg)
    if cfg.export:
        m = export(model, cfg)
        print(json.dumps(m["final_metrics"], indent=1))
        print(f"wrote {cfg.weights} and its .json manifest")
