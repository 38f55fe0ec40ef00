"""The VQ tokenizer's quality bars, measured on fresh renders (chapter 2):
PSNR of the round trip, the judge's agreement on reconstructions, codebook
usage and perplexity, and flat-patch purity; and the resolution ladder
and held-out renders they use.
"""

from __future__ import annotations

from collections import Counter

import torch

from ..evaluation.judge import detect
from ..models.vq import VQModel
from ..utils import to_pil
from ..world.dataset import make_example, to_tensor

GRIDS = (8, 16, 32)          # token grids of stages 1, 2 and 3-4
TRAIN_SEED, EVAL_SEED = 1000, 2000


def ladder(factor: int) -> tuple[int, ...]:
    """Pixel sizes of the resolution ladder for a downsampling factor."""
    return tuple(g * factor for g in GRIDS)


def held_out(n: int, size: int, clean: bool = True, seed: int = EVAL_SEED
             ) -> torch.Tensor:
    """`n` held-out renders (never seen in training) as (n, 3, S, S)."""
    return torch.stack([to_tensor(make_example(seed, i, size, "short",
                                               degrade=not clean).image)
                        for i in range(n)])


# ---- metrics ------------------------------------------------------------
def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB between (B, 3, H, W) images in [0, 1]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def reconstruct(model: VQModel, x: torch.Tensor, batch: int = 64
                ) -> torch.Tensor:
    """decode(encode(x)) in batches, fp32."""
    return torch.cat([model.reconstruct(x[i:i + batch])
                      for i in range(0, len(x), batch)])


def mean_psnr(model: VQModel, n: int, size: int, clean: bool = True,
              seed: int = EVAL_SEED) -> float:
    """Mean PSNR (dB, of per-image MSE averaged) on held-out renders."""
    x = held_out(n, size, clean, seed)
    mse = (reconstruct(model, x) - x).pow(2).mean()
    return float(-10 * torch.log10(mse))


def judge_agreement(model: VQModel, n: int, size: int,
                    seed: int = EVAL_SEED) -> float:
    """Share of images where the judge sees the same (kind, colour) counts
    on the reconstruction as on the original."""
    x = held_out(n, size, True, seed)
    rec = reconstruct(model, x)
    same = 0
    for a, b in zip(x, rec):
        ca = Counter((d.kind, d.color) for d in detect(to_pil(a)))
        cb = Counter((d.kind, d.color) for d in detect(to_pil(b)))
        same += int(ca == cb)
    return same / n


def codebook_stats(model: VQModel, n: int, size: int,
                   seed: int = EVAL_SEED) -> dict:
    """Usage (share of codes used) and perplexity on held-out images."""
    counts = torch.zeros(model.config.num_codes)
    for i in range(0, n, 250):
        x = held_out(min(250, n - i), size, True, seed + 7 + i)
        tok = model.encode(x)
        counts += torch.bincount(tok.flatten(), minlength=len(counts))
    p = counts / counts.sum()
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return {"usage": float((counts > 0).float().mean()),
            "perplexity": float(ent.exp()), "counts": counts.long().tolist()}


@torch.no_grad()
def flat_patch_purity(model: VQModel, n: int = 100, size: int = 128,
                      seed: int = EVAL_SEED + 3) -> dict:
    """Do identical patches get one code? On n clean renders, every f x f
    patch of a single colour: per colour, the share of such patches that
    take that colour's most common code, and how many codes they take.
    A transformer must predict whichever code the encoder chose, so
    purity below 1 is entropy the generator pays for and cannot see."""
    f = model.config.factor
    codes: dict[tuple, torch.Tensor] = {}
    for i in range(0, n, 50):
        x = held_out(min(50, n - i), size, True, seed + i)
        tok = model.encode(x)                                   # (B, h, w)
        px = (x * 255).round().long()                           # (B,3,H,W)
        p = px.unfold(2, f, f).unfold(3, f, f)                  # B,3,h,w,f,f
        p = p.flatten(-2)                                       # B,3,h,w,ff
        flat = (p == p[..., :1]).all(-1).all(1)                 # (B, h, w)
        col = p[..., 0].permute(0, 2, 3, 1)[flat]               # (N, 3)
        for c, t in zip(col.tolist(), tok[flat].tolist()):
            codes.setdefault(tuple(c), torch.zeros(
                model.config.num_codes, dtype=torch.long))[t] += 1
    per = {c: v for c, v in codes.items() if v.sum() >= 50}
    if not per:
        raise ValueError("no colour has 50 flat patches; raise n")
    top = [float(v.max() / v.sum()) for v in per.values()]
    distinct = [int((v > 0).sum()) for v in per.values()]
    return {"purity": round(sum(top) / len(top), 4),
            "min_purity": round(min(top), 4),
            "codes_per_colour": round(sum(distinct) / len(distinct), 1),
            "colours": len(per), "n": n}


def final_metrics(model: VQModel, n_psnr: int = 200, n_judge: int = 500,
                  n_usage: int = 2000) -> dict:
    """Every quality bar of the tokenizer, measured on fresh renders."""
    model.eval()
    sizes = ladder(model.config.factor)
    out: dict = {"psnr_clean": {}, "psnr_mixed": {}, "judge_agreement": {}}
    for s in sizes:
        out["psnr_clean"][str(s)] = round(mean_psnr(model, n_psnr, s), 3)
        out["psnr_mixed"][str(s)] = round(
            mean_psnr(model, n_psnr, s, clean=False), 3)
        out["judge_agreement"][str(s)] = round(
            judge_agreement(model, n_judge, s), 4)
    st = codebook_stats(model, n_usage, sizes[1])
    out["usage"] = round(st["usage"], 4)
    out["perplexity"] = round(st["perplexity"], 2)
    out["usage_size"] = sizes[1]
    out["flat_patches"] = flat_patch_purity(model, size=sizes[-1])
    out["n"] = {"psnr": n_psnr, "judge": n_judge, "usage": n_usage}
    return out

