"""Train the tiny CLIP contrastively on Shapes-world pairs (`train-clip`)
(chapter 3).

`train(ClipTrainConfig(...))` renders a fixed image stream (cached in the
run dir), draws fresh captions and hard negatives every step
(`clip_data`), minimises InfoNCE plus the optional auxiliary heads
(`clip_loss`) under bf16 autocast, checkpoints atomically (resume, or
stop at a step and resume later), evaluates held-out retrieval and
binding (`clip_eval`) along the way, and finally saves fp16 weights,
re-measures them as saved and writes the manifest.

The data, objective and measurements it is built from are importable from
here too (chapter 3 reads them as `clip_train.<name>`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..models.text import (
    WEIGHTS,
    TextEncoder,
    TextEncoderConfig,
    build_clip,
    from_pretrained,
    save,
)
from ..utils import (
    atomic_torch_save,
    atomic_write_bytes,
    autocast,
    set_seed,
    warmup_cosine,
)
from ..world import vocab
from ..world.scene import Scene
from .clip_data import (
    EVAL_SEED,
    batch_pairs,
    make_images,
    mirror_pairs,
    mirror_scene,
    mirrored,
)
from .clip_eval import evaluate
from .clip_loss import (
    AuxHeads,
    clip_loss,
    color_layout,
    kind_presence,
    relation_labels,
)

__all__ = ["ClipTrainConfig", "train"]


@dataclasses.dataclass
class ClipTrainConfig:
    """One train-clip run (the `meissonic-lite train-clip` options, with
    the same names and defaults)."""

    out: str = "runs/clip"         # run dir: checkpoint, log, data cache
    steps: int = 3000
    batch: int = 64
    lr: float = 5e-4
    wd: float = 0.2
    warmup: int = 200
    width: int = 128               # text and vision width
    embed_dim: int = 128           # pooled width E
    layers: int = 4                # text layers
    vision_layers: int = 4
    context: int = 77
    size: int = 64                 # image pixels
    n_images: int = 40000
    world_seed: int = 1000
    seed: int = 0
    eval_every: int = 500
    ckpt_every: int = 250
    eval_pairs: int = 1000         # final held-out pairs
    eval_probes: int = 300         # final binding probes per swap kind
    bf16: bool = True
    mirror_negatives: bool = True  # mirrored relation images as negatives
    mirror_positives: bool = False  # ... and as positive pairs
    aux: float = 0.0               # weight of the auxiliary heads (0: off)
    aux_kinds: float = 0.0         # with aux: weight of the kind heads
    kind_negatives: float = 0.0    # share of hard negatives changing a kind
    init_from: str = ""            # start from these CLIP weights
    pos_scale: float = 1.0         # scale the image position table at start
    resume: bool = False           # continue from out/ckpt.pt
    stop_at: int = 0               # checkpoint and stop at this step
    ship: bool = False             # write the package's weights + manifest
    command: str = ""              # the command line, for the manifest


# -- training ----------------------------------------------------------------
def _lr(step: int, cfg: ClipTrainConfig) -> float:
    return cfg.lr * warmup_cosine(step, cfg.steps, cfg.warmup, floor=0.0)


def _optimizer(clip, cfg: ClipTrainConfig, aux: AuxHeads | None = None
               ) -> torch.optim.Optimizer:
    # No decay on gains, biases, the scale and the token table: rows of
    # tokens our captions never use must stay exactly at their init.
    decay, keep = [], []
    for n, p in clip.named_parameters():
        no = p.ndim < 2 or "token_embedding" in n or "logit_scale" in n
        (keep if no else decay).append(p)
    if aux is not None:
        keep += list(aux.parameters())
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.wd},
         {"params": keep, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def _data(cfg: ClipTrainConfig, out: Path
          ) -> tuple[torch.Tensor, list[Scene]]:
    cache = out / "data.pt"
    if cache.is_file():
        d = torch.load(cache, weights_only=False)
        if d["key"] == [cfg.world_seed, cfg.n_images, cfg.size]:
            return d["images"], d["scenes"]
    imgs, scenes = make_images(cfg.world_seed, cfg.n_images, cfg.size,
                               progress=True)
    atomic_torch_save(cache, {"key": [cfg.world_seed, cfg.n_images,
                                      cfg.size],
                              "images": imgs, "scenes": scenes})
    return imgs, scenes


def _init_from(enc: TextEncoder, cfg: TextEncoderConfig, path: Path
               ) -> dict:
    """Start from a saved CLIP (fresh optimizer and schedule); returns
    the manifest that made it ({} if none), for this run's manifest."""
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no such file {path}")
    src = from_pretrained(path)
    if src.cfg != cfg:
        raise ValueError(f"--init-from {path}: its config {src.cfg} differs "
                         f"from this run's {cfg}")
    enc.clip.load_state_dict(src.clip.state_dict())
    manifest = path.with_suffix(".json")
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return {}


def _previous_command(cfg: ClipTrainConfig) -> list[str]:
    """The command of the run we resume, from its manifest if any."""
    path = (WEIGHTS if cfg.ship else Path(cfg.out) / "x").with_name(
        "clip.json")
    if path.is_file():
        return [json.loads(path.read_text())["command"]]
    return []


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from."""
    if path.is_file():
        keep = [x for x in path.read_text().splitlines()
                if json.loads(x)["step"] <= step]
        atomic_write_bytes(path, "".join(k + "\n" for k in keep).encode())


def train(cfg: ClipTrainConfig) -> dict:
    """The training run behind `meissonic-lite train-clip`: the manifest,
    or {"stopped_at": step} after `stop_at`."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    enc_cfg = TextEncoderConfig(
        embed_dim=cfg.embed_dim, text_width=cfg.width,
        text_layers=cfg.layers, text_heads=cfg.width // 32,
        context_length=cfg.context, image_size=cfg.size,
        vision_width=cfg.width, vision_layers=cfg.vision_layers,
        init_seed=cfg.seed)
    enc = TextEncoder(build_clip(enc_cfg), enc_cfg, trainable=True)
    aux = AuxHeads(enc_cfg.embed_dim, cfg.aux_kinds) if cfg.aux > 0 else None
    opt = _optimizer(enc.clip, cfg, aux)
    step, wall, ckpt = 0, 0.0, out / "ckpt.pt"
    history, base = [], None      # base: the manifest of init_from's run
    if cfg.resume and ckpt.is_file():
        st = torch.load(ckpt, weights_only=False)
        enc.clip.load_state_dict(st["model"])
        if aux is not None:
            aux.load_state_dict(st["aux"])
        opt.load_state_dict(st["opt"])
        step, wall = st["step"], st["wall"]
        history = st.get("commands") or _previous_command(cfg)
        base = st.get("base")
        _truncate_log(out / "log.jsonl", step)
    elif not cfg.resume:
        (out / "log.jsonl").unlink(missing_ok=True)
        if cfg.init_from:
            made = _init_from(enc, enc_cfg, Path(cfg.init_from))
            base = {k: made[k] for k in ("command", "steps",
                    "wall_time_s", "final_metrics", "curve", "evals",
                    "init") if k in made}          # "init": its own source
            history = [made["command"]] if made else []
        with torch.no_grad():       # see --pos-scale
            enc.clip.visual.positional_embedding.mul_(cfg.pos_scale)
    images, scenes = _data(cfg, out)
    bar = tqdm(total=cfg.steps, initial=step, desc="train-clip")
    t0 = time.time() - wall
    stop = min(cfg.steps, cfg.stop_at or cfg.steps)
    while step < stop:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(scenes), (cfg.batch,), generator=g)
        pos, neg, false = batch_pairs(scenes, idx, cfg.seed, step,
                                      cfg.kind_negatives)
        x = images[idx].float() / 255                    # (B, 3, S, S)
        batch = [scenes[i] for i in idx]
        if cfg.mirror_positives:
            mx, mp, mn = mirror_pairs(x, batch, cfg.seed, step)
            x, pos, neg = torch.cat([x, mx]), pos + mp, neg + mn
            kept = [s for s in batch if s.relation is not None
                    and all(g.kind in vocab.SHAPES for g in s.groups)]
            batch += [mirror_scene(s) for s in kept]
            false += kept          # a mirror's false caption: the original
        B = len(pos)
        ids = enc.tokenize(pos + neg)
        for grp in opt.param_groups:
            grp["lr"] = _lr(step, cfg)
        if cfg.mirror_negatives:
            x = torch.cat([x, mirrored(x, batch)])
        with autocast(torch.device("cpu"), cfg.bf16):
            im = enc.encode_image(x).float()
            tx = enc.text_forward(ids, trim=True)[1].float()
            scale = enc.clip.logit_scale.exp().clamp(max=100)
            loss = clip_loss(im[:B], tx[:B], scale, tx[B:], im[B:])
            if aux is not None:
                aux_loss = aux.loss(tx, relation_labels(batch + false),
                                    im[:B], color_layout(batch),
                                    kind_presence(batch + false),
                                    kind_presence(batch))
                loss = loss + cfg.aux * aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        rec = {"step": step, "loss": round(loss.item(), 4),
               "lr": _lr(step - 1, cfg), "scale": round(scale.item(), 2),
               "time_s": round(time.time() - t0, 1)}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            enc.set_trainable(False)
            rec.update(evaluate(enc, n_pairs=cfg.eval_pairs // 5,
                                n_probe=cfg.eval_probes // 3))
            enc.set_trainable(True)
            tqdm.write(json.dumps(rec))
        if step % 10 == 0 or "t2i_top1" in rec:
            with open(out / "log.jsonl", "a") as log:
                log.write(json.dumps(rec) + "\n")
        if step % cfg.ckpt_every == 0 or step in (cfg.steps, stop):
            atomic_torch_save(ckpt, {
                "model": enc.clip.state_dict(),
                "aux": aux.state_dict() if aux else None,
                "opt": opt.state_dict(), "step": step,
                "wall": time.time() - t0,
                "commands": history + [cfg.command],
                "base": base})
    bar.close()
    if step < cfg.steps:                    # --stop-at: resume later
        return {"stopped_at": step}
    wall = time.time() - t0
    return _finish(enc, enc_cfg, cfg, history, base, out, wall)


def _finish(enc, enc_cfg, cfg: ClipTrainConfig, history: list[str],
            base: dict | None, out: Path, wall: float) -> dict:
    """Save fp16 weights, re-measure them as shipped, write the manifest."""
    path = WEIGHTS if cfg.ship else out / "clip.safetensors"
    save(enc.clip, enc_cfg, path)
    shipped = from_pretrained(path)
    metrics = evaluate(shipped, n_pairs=cfg.eval_pairs,
                       n_probe=cfg.eval_probes)
    curve = [json.loads(x) for x in
             (out / "log.jsonl").read_text().splitlines()]
    manifest = {
        "command": " && ".join(history + [cfg.command]),
        "config": dataclasses.asdict(enc_cfg),
        "seed": cfg.seed,
        "data": {"world_seed": cfg.world_seed, "n_images": cfg.n_images,
                 "size": cfg.size, "captions": "mixed short/long, fresh "
                 "per step, + 1 hard-negative caption per image",
                 "mirror_negatives": cfg.mirror_negatives,
                 "mirror_positives": cfg.mirror_positives,
                 "aux_weight": cfg.aux, "pos_scale": cfg.pos_scale,
                 "aux_kinds_weight": cfg.aux_kinds,
                 "kind_negatives": cfg.kind_negatives,
                 "init_from": cfg.init_from or None,
                 "heldout": f"world seed {EVAL_SEED} (pairs) and "
                 f"{EVAL_SEED + 1} (binding probes)"},
        "steps": cfg.steps, "batch": cfg.batch, "lr": cfg.lr,
        "wall_time_s": round(wall, 1),
        "params": sum(p.numel() for p in enc.clip.parameters()),
        "final_metrics": metrics,
        "curve": [{k: r[k] for k in ("step", "loss", "scale")}
                  for r in curve if r["step"] % 50 == 0],
        "evals": [r for r in curve if "t2i_top1" in r],
        "init": base,                          # the run we started from
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "dtype": "float16",
    }
    atomic_write_bytes(path.with_suffix(".json"),
                       (json.dumps(manifest, indent=1) + "\n").encode())
    print(json.dumps(metrics))
    return manifest

