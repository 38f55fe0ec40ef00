"""Meissonic's four progressive stages, shrunk to a CPU.

Paper (section 2.5): 256^2 -> 512^2 with long captions -> 1024^2 with
feature compression added -> aesthetic fine-tune with the text encoder
unfrozen. Ours, on token grids: 8x8 short captions from scratch -> 16x16
long captions -> 32x32 with compression (16x16 inside) -> fine-tune on
curated data (mostly clean images, long captions) with the text encoder
unfrozen at a tenth of the learning rate. Every stage feeds the *measured*
aesthetic score as a micro-condition (the released data code feeds a
constant 6.0: spec 4.4). In every stage half of the samples are masked as
blobs instead of scattered tokens (`masking.blob_keys`), so the model
learns to draw an object it cannot see any part of: what the sampler asks
once the background is decoded (chapter 6). Most of the budget goes to
stage 3, the resolution the book ships.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..models import text, vq
from ..models.pretrained import save_transformer
from ..models.transformer import MeissonicTransformer, TransformerConfig
from ..sampling.pipeline import MeissonicLitePipeline
from ..world.grid import captioned_grid
from .token_cache import extract, load_cache
from .trainer import TrainConfig, Trainer


@dataclass
class StageSpec:
    """What one stage trains on and how long."""

    stage: int
    grid: int                    # VQ token grid side
    compress: bool               # 2x2 feature compression in the model
    caption_style: str           # world captions: short / long / mixed
    p_clean: float               # share of undegraded images in the data
    n_images: int                # images in the stage's token cache
    steps: int
    batch_size: int
    lr: float
    warmup: int
    train_text: bool = False     # unfreeze the text encoder (stage 4)
    init_from: int | None = None
    schedule: str = "cosine"     # LR: warmup, then cosine to 10%
    blob_masks: float = 0.0      # share of samples masked as blobs ...
    blob_start: int = 0          # ... from this step of the stage on


STAGES: dict[int, StageSpec] = {
    1: StageSpec(1, 8, False, "short", 0.8, 20000, 400, 64, 1e-3, 50,
                 blob_masks=0.5),
    2: StageSpec(2, 16, False, "long", 0.8, 20000, 800, 32, 8e-4, 50,
                 init_from=1, blob_masks=0.5),
    3: StageSpec(3, 32, True, "mixed", 0.8, 24000, 2400, 32, 6e-4, 100,
                 init_from=2, blob_masks=0.5),
    4: StageSpec(4, 32, True, "mixed", 0.9, 8000, 300, 32, 1e-4, 30,
                 train_text=True, init_from=3, blob_masks=0.5),
}

# Held-out prompts drawn during training (one per GenEval-lite category
# and two more), the same in every stage: the paper's Figure 27 idea.
SAMPLE_PROMPTS: tuple[str, ...] = (
    "a photo of a circle", "a photo of a red star",
    "a photo of two letters R", "a photo of three green squares",
    "a photo of a letter U right of a triangle",
    "a photo of a blue cross and a yellow letter P",
    "a photo of a purple diamond above a white circle",
    "a photo of a letter A and a letter B")
SAMPLE_EVERY = 250


def model_config(spec: StageSpec, vq_codes: int, text_dim: int,
                 pooled_dim: int) -> TransformerConfig:
    """The `lite` preset sized to the VQ codebook and the text encoder."""
    return TransformerConfig.preset(
        "lite", codebook_size=vq_codes, vocab_size=vq_codes + 1,
        text_dim=text_dim, pooled_dim=pooled_dim, compress=spec.compress)


def init_from_previous(model: MeissonicTransformer, path: Path) -> list:
    """Load the previous stage; only new compression layers may be new."""
    if not path.is_file():
        raise FileNotFoundError(f"stage weights {path} not found: run the "
                                "previous stage first")
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:          # shape mismatch, e.g. other widths
        raise ValueError(f"{path} does not fit this stage's model: "
                         f"{str(e)[:300]}") from e
    new = [k for k in missing if not k.startswith(("down_block.",
                                                   "up_block."))]
    if new or unexpected:
        raise ValueError(f"{path} does not fit this stage's model: missing "
                         f"{new}, unexpected {unexpected}")
    return missing


class FrozenTextCache:
    """Encode captions with a frozen text encoder, each caption once.

    The paper extracts text features offline; a memo does the same lazily
    (a frozen encoder gives the same states every time), which takes the
    text tower out of most training steps."""

    def __init__(self, enc):
        self.enc, self.memo = enc, {}

    @torch.no_grad()
    def __call__(self, captions: list[str]):
        todo = list(dict.fromkeys(c for c in captions if c not in self.memo))
        if todo:
            h, p = self.enc.encode(todo)
            for c, hi, pi in zip(todo, h.half(), p.half()):
                self.memo[c] = (hi, pi)
        h = torch.stack([self.memo[c][0] for c in captions]).float()
        p = torch.stack([self.memo[c][1] for c in captions]).float()
        return h, p


class StageSampler:
    """Draws SAMPLE_PROMPTS with the model being trained, as a PNG grid
    (out/step_NNNNN.png); the trainer calls it every SAMPLE_EVERY steps."""

    settings = {"num_inference_steps": 16, "guidance_scale": 4.0,
                "aesthetic_score": 9.0, "seed": 0}

    def __init__(self, vq, text_encoder, spec: StageSpec, out: Path,
                 device: str):
        self.pipeline, self.grid = MeissonicLitePipeline, captioned_grid
        self.vq, self.enc, self.spec = vq, text_encoder, spec
        self.out, self.device = Path(out), device
        self.seconds, self.last = 0.0, None

    def __call__(self, step: int, model) -> None:
        t0 = time.perf_counter()
        size = self.spec.grid * self.vq.config.factor
        pipe = self.pipeline(self.vq, self.enc, model, self.device)
        st = self.settings
        images = pipe(list(SAMPLE_PROMPTS),
                      num_inference_steps=st["num_inference_steps"],
                      guidance_scale=st["guidance_scale"],
                      aesthetic_score=st["aesthetic_score"],
                      height=size, width=size,
                      generator=torch.Generator().manual_seed(st["seed"]))
        self.enc.set_trainable(self.spec.train_text)   # pipe set eval()
        images = [im.resize((128, 128)) for im in images]
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"step_{step:05d}.png"
        self.grid(images, [p.removeprefix("a photo of ")
                                for p in SAMPLE_PROMPTS], cols=4,
                       text_lines=2).save(path)
        self.last = path.name
        self.seconds += time.perf_counter() - t0


def run_stage(stage: int, runs: str | Path = "runs/t2i",
              caches: str | Path = "cache", steps: int | None = None,
              resume: bool = False, seed: int = 0,
              device: str = "cpu", n_images: int | None = None,
              batch_size: int | None = None,
              vq_path: str | Path | None = None, command: str = "") -> dict:
    """Extract the stage's cache if needed, train, write weights+manifest.

    `vq_path` trains on another tokenizer's tokens (default: the shipped
    one), e.g. a candidate VQ that must ship together with this model.
    `command` is the command line the manifest records."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}")
    spec = STAGES[stage]
    spec = replace(spec, steps=steps or spec.steps,
                   n_images=n_images or spec.n_images,
                   batch_size=batch_size or spec.batch_size)
    runs, caches = Path(runs), Path(caches)
    out = runs / f"stage{stage}"
    tok = vq.from_pretrained(vq_path)
    cache_dir = caches / f"stage{stage}"
    want = {"count": spec.n_images, "world_seed": 1000 + stage,
            "caption_style": spec.caption_style, "p_clean": spec.p_clean,
            "tokenizer_sha256": tok.tokenizer_sha256}
    meta_path, stale = cache_dir / "meta.json", {}
    if meta_path.exists():
        have = json.loads(meta_path.read_text())
        stale = {k: have.get(k) for k in want if have.get(k) != want[k]}
        if stale:
            print(f"cache {cache_dir} differs from stage {stage}'s spec "
                  f"({stale}); extracting it again")
    if not meta_path.exists() or stale:
        extract(cache_dir, stage, spec.n_images,
                seed=1000 + stage, caption_style=spec.caption_style,
                p_clean=spec.p_clean, vq=tok)
    data = load_cache(cache_dir, tok)
    enc = text.from_pretrained(device=device, trainable=spec.train_text)
    cfg = model_config(spec, tok.config.num_codes, enc.hidden_dim,
                       enc.pooled_dim)
    torch.manual_seed(seed)
    model = MeissonicTransformer(cfg)
    if spec.init_from and not resume:
        init_from_previous(model, runs / f"stage{spec.init_from}" /
                           "model.safetensors")

    encode = enc.encode if spec.train_text else FrozenTextCache(enc)
    with torch.no_grad():
        null = tuple(t.detach() for t in enc.null(1))
    tcfg = TrainConfig(steps=spec.steps, batch_size=spec.batch_size,
                       lr=spec.lr, warmup=spec.warmup, seed=seed,
                       schedule=spec.schedule, ckpt_every=200, log_every=10,
                       sample_every=SAMPLE_EVERY,
                       blob_masks=spec.blob_masks,
                       blob_start=spec.blob_start)
    extra = list(enc.parameters()) if spec.train_text else None
    trainer = Trainer(model, data, tcfg, out, null, encode,
                      model_config=asdict(cfg), extra_params=extra,
                      device=device)
    sampler = StageSampler(tok, enc, spec, out / "samples", device)
    logs = trainer.fit(resume=resume, on_sample=sampler)
    wall = trainer.train_seconds     # training steps only, over resumes
    save_transformer(model, out / "model.safetensors")
    if spec.train_text:
        text.save(enc.clip, enc.cfg, out / "clip.safetensors")
    last = logs[-20:] if logs else []
    manifest = {
        "command": command,
        "stage": asdict(spec), "model_config": asdict(cfg),
        "train_config": asdict(tcfg), "seed": seed,
        "data": data.meta, "steps": trainer.step,
        "vq": {"path": str(vq_path or vq.DEFAULT_WEIGHTS),
               "tokenizer_sha256": tok.tokenizer_sha256},
        "wall_time_s": round(wall, 1),
        "sampling_time_s": round(sampler.seconds, 1),
        "final_metrics": {"train_loss_last20": (
            sum(x["loss"] for x in last) / len(last) if last else None)},
        "samples": {"prompts": list(SAMPLE_PROMPTS), "every": SAMPLE_EVERY,
                    "final": sampler.last, "settings": sampler.settings},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
