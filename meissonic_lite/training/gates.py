"""Learnability gates: the simplest text-to-image task, trained and judged
on a curve (chapter 6).

G0 is one large object (6 shapes x 8 colours) on a plain gray background
with a short caption ("a red star"). A model that cannot learn G0 in a few
CPU-minutes has something broken or unlearnable in its tokens, its text
path or its sampler, and a longer run will not fix it. `run_gate` trains a
transformer from scratch on G0, and every `eval_every` steps draws each
caption with the sampler and lets the independent judge read it: the
curve of judge score against images seen is the result.

`cond="onehot"` replaces the CLIP states with one fixed random vector per
kind and per colour: the ideal text encoder, to isolate the text path.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..evaluation.judge import COLOR_NAMES
from ..models import text
from ..models import vq as vq_mod
from ..models.pretrained import load_transformer, save_transformer
from ..models.transformer import MeissonicTransformer, TransformerConfig
from ..sampling.decode import micro_conditions
from ..world.dataset import to_tensor
from ..world.quality import aesthetic_score
from .checkpoint import LATEST
from .gate_data import (
    ClipText,
    GateConfig,
    OneHotText,
    flat_codes,
    g0_caption,
    g0_images,
    g0_pairs,
    g0_twins,
    snap_to_flat,
)
from .gate_judge import (
    JUDGE_SEED,
    edge_interior_accuracy,
    judge_gate,
    kind_by_likelihood,
    score_g0,
    twin_probe,
)
from .resume_point import export_resume_point, load_resume_point
from .trainer import TrainConfig, Trainer

# The gate's face: its data (gate_data), its judge (gate_judge) and its run.
__all__ = [
    "COLOR_NAMES",
    "JUDGE_SEED",
    "ClipText",
    "GateConfig",
    "OneHotText",
    "edge_interior_accuracy",
    "export_gate",
    "flat_codes",
    "g0_caption",
    "g0_images",
    "g0_pairs",
    "g0_twins",
    "gate_conditioner",
    "gate_tokenizer",
    "judge_gate",
    "kind_by_likelihood",
    "run_gate",
    "sampler_sweep",
    "score_g0",
    "snap_to_flat",
    "twin_probe",
]


def sampler_sweep(out: str | Path, settings: list[tuple], command: str = "",
                  seed: int = JUDGE_SEED, weights: str = "model") -> dict:
    """Judge a finished gate run's model under other sampler settings
    (steps, CFG, start choice temperature[, reveal order[, token
    temperature]]), as many images per caption as the run's evaluations;
    writes out/sweep.json, which records `command`. Tells a sampler
    problem from a model problem. `seed` draws other samples of the same captions (a fresh check of a
    setting chosen on the default seed); `weights` "model_ema" judges the
    averaged weights."""
    if weights not in ("model", "model_ema"):
        raise ValueError(f"weights must be 'model' or 'model_ema', got "
                         f"{weights!r}")
    out = Path(out)
    cfg = GateConfig(**json.loads((out / "curve.json").read_text())[
        "config"])
    tok = gate_tokenizer(cfg)
    model = load_transformer(out / f"{weights}.safetensors")
    cond = gate_conditioner(cfg, text.from_pretrained(text_only=True))
    rows = []
    for steps, guidance, temp, *rest in settings:
        order = rest[0] if rest else "confidence"
        token_temp = rest[1] if len(rest) > 1 else 1.0
        c = replace(cfg, sample_steps=int(steps), guidance=guidance,
                    gumbel=(temp, 0.0), order=order,
                    token_temperature=float(token_temp))
        r = judge_gate(model, tok, cond, c, seed)
        r.pop("images")
        rows.append({"steps": int(steps), "guidance": guidance,
                     "choice_temperature": temp, "order": c.order,
                     "token_temperature": c.token_temperature, **r})
        print(json.dumps(rows[-1]), flush=True)
    res = {"command": command, "seed": seed, "weights": weights,
           "rows": rows}
    (out / "sweep.json").write_text(json.dumps(res, indent=1))
    return res


def export_gate(out: str | Path, path: str | Path, command: str = ""
                ) -> dict:
    """Write run `out`'s latest checkpoint as a resume point at `path`
    (one small file a session can commit; `--init` continues from it)."""
    out = Path(out)
    curve = json.loads((out / "curve.json").read_text())
    cfg = GateConfig(**curve["config"])
    tok = gate_tokenizer(cfg)
    return export_resume_point(out / LATEST, path,
                               curve.get("start_images", 0), cfg.batch_size,
                               tok.tokenizer_sha256, command)


def gate_tokenizer(cfg: GateConfig):
    """The gate's VQ: `cfg.tokenizer`'s weights, or the shipped one."""
    return vq_mod.from_pretrained(cfg.tokenizer or None)


def gate_conditioner(cfg: GateConfig, enc):
    """The gate's text path: the CLIP encoder, or one-hot vectors."""
    return (ClipText(enc, cfg.text_len) if cfg.cond == "clip" else
            OneHotText(enc.hidden_dim, enc.pooled_dim, cfg.seed))


def run_gate(cfg: GateConfig, out: str | Path, device: str = "cpu",
             resume: bool = False, command: str = "") -> dict:
    """Train from scratch on the gate's data; write curve.json (the judge's
    score and the circle/square twin probe against images seen, then the
    edge/interior and kind probes), the model and a sample grid at each
    evaluation under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = gate_tokenizer(cfg)
    enc = text.from_pretrained(device=device, text_only=True)
    conditioner = gate_conditioner(cfg, enc)
    t0 = time.perf_counter()
    rendered = g0_images(cfg.n_images, cfg.size, cfg.seed, cfg.align)
    caps = [g0_caption(k, c) for _, (k, c) in rendered]
    with torch.no_grad():
        encode = tok.encode if cfg.tokens == "vq" else \
            (lambda x: snap_to_flat(x, tok))
        tokens = torch.cat([encode(torch.stack(
            [to_tensor(im) for im, _ in rendered[i:i + 256]]))
            for i in range(0, len(rendered), 256)])
        states, pooled = conditioner.encode(caps)
    data = [{"tokens": t, "states": s, "pooled": p,
             "micro_conds": micro_conditions(cfg.size, cfg.size, 1,
                                        aesthetic_score(im))[0]}
            for t, s, p, (im, _) in zip(tokens, states, pooled, rendered)]
    prep_s = time.perf_counter() - t0
    mcfg = TransformerConfig.preset(
        "lite", codebook_size=tok.config.num_codes,
        vocab_size=tok.config.num_codes + 1, text_dim=enc.hidden_dim,
        pooled_dim=enc.pooled_dim, compress=cfg.compress,
        compress_factor=cfg.compress_factor,
        num_heads=cfg.heads, conv_blocks=cfg.conv_blocks)
    torch.manual_seed(cfg.seed)
    model = MeissonicTransformer(mcfg)
    start = 0                      # images seen before this run
    if cfg.init:
        state, notes = load_resume_point(cfg.init, mcfg,
                                         tok.tokenizer_sha256)
        model.load_state_dict(state)
        start = notes["images_seen"]
    tcfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size,
                       lr=cfg.lr, warmup=cfg.warmup, schedule=cfg.schedule,
                       betas=(0.9, cfg.beta2),
                       cfg_dropout=cfg.cfg_dropout, seed=cfg.seed,
                       blob_masks=cfg.blob_masks, log_every=10,
                       label_smoothing=cfg.label_smoothing,
                       ema=cfg.ema or None,
                       ckpt_every=100, sample_every=cfg.eval_every,
                       bf16=cfg.bf16)
    null = conditioner.null(1)
    trainer = Trainer(model, data, tcfg, out, null,
                      model_config=asdict(mcfg), device=device)
    curve_path = out / "curve.json"
    curve = json.loads(curve_path.read_text())["points"] \
        if resume and curve_path.exists() else []

    def on_sample(step: int, m) -> None:
        t = time.perf_counter()
        r = judge_gate(m, tok, conditioner, cfg)
        _save_grid(r.pop("images"), out / f"grid_{step:05d}.png")
        r["twin"] = twin_probe(m, tok, conditioner, cfg)  # seconds
        if trainer.ema is not None:  # the averaged weights, judged alike
            e = judge_gate(trainer.ema.module, tok, conditioner, cfg)
            _save_grid(e.pop("images"), out / f"grid_ema_{step:05d}.png")
            e["twin"] = twin_probe(trainer.ema.module, tok, conditioner, cfg)
            r.update({f"ema_{k}": v for k, v in e.items() if k != "n"})
        r.update(step=step, images_seen=start + step * cfg.batch_size,
                 train_s=round(trainer.train_seconds, 1),
                 judge_s=round(time.perf_counter() - t, 1))
        curve[:] = [p for p in curve if p["step"] < step] + [r]
        print(json.dumps(r), flush=True)
        curve_path.write_text(json.dumps(
            {"config": asdict(cfg), "prep_s": round(prep_s, 1),
             "start_images": start, "points": curve}, indent=1))

    trainer.fit(resume=resume, on_sample=on_sample)
    save_transformer(model, out / "model.safetensors")
    if trainer.ema is not None:
        save_transformer(trainer.ema.module, out / "model_ema.safetensors")
    result = json.loads(curve_path.read_text())
    result.update(command=command, wall_s=round(time.perf_counter() - t0, 1),
                  probe=edge_interior_accuracy(model, tok, conditioner, cfg),
                  kind_probe=kind_by_likelihood(model, tok, conditioner, cfg),
                  twin_probe=twin_probe(model, tok, conditioner, cfg))
    curve_path.write_text(json.dumps(result, indent=1))
    return result


def _save_grid(arr: np.ndarray, path: Path, cols: int = 12) -> None:
    """The first 48 samples (one per caption) as one PNG."""
    a = arr[:48]
    rows = -(-len(a) // cols)
    h, w = a.shape[1:3]
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, im in enumerate(a):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    Image.fromarray(sheet).save(path)
