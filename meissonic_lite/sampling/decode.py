"""Iterative parallel decoding with classifier-free guidance (chapter 7).

MaskGIT's decoder as Meissonic runs it (spec 2.2): start from a canvas of
[MASK] tokens; at each of N steps predict every masked token, sample one
code per position, score it by log p plus annealed Gumbel noise, keep the
most confident ones as the schedule allows and re-mask the rest. Known
tokens are never re-masked; every token is decoded at the last step. CFG
mixes conditional and unconditional logits from one batched forward:
l = l_u + s (l_c - l_u), with the empty prompt (or a negative prompt) as
the unconditional input. The mask-rate level fed at each step is the
canvas's actual masked fraction, on the same scale as in training.

`order` picks which sampled tokens are kept: MaskGIT's confidence (the
default), a random draw, or the Halton-MaskGIT order (Besnier et al.,
2025), which spreads each step's tokens over the grid.

Starting from a partly masked canvas (editing), the schedule runs over the
tokens that start masked, so inpainting needs no special scheduler.

`blob_noise` > 0 (not in the paper) adds one smooth random field per image
to the reveal noise, so the tokens still masked form connected regions,
like the blob masks half of our training samples use, instead of
scattered ones: a region can stay open long enough for an object to be
drawn in it. Off by default: on the shipped model it gives calmer
backgrounds but still no objects. At 0 the random stream is MaskGIT's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .masking import (
    blob_keys,
    halton_ranks,
    mask_rate_level,
    masked_count_after_step,
)

Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class SamplerConfig:
    """Decoding settings (paper: 48 steps, CFG 9, cosine, T 2 -> 0)."""

    steps: int = 16
    guidance_scale: float = 9.0
    schedule: str = "cosine"
    gumbel_temperature: tuple[float, float] = (2.0, 0.0)  # start, end
    token_temperature: float = 1.0
    top_k: int | None = None
    guidance_schedule: str = "constant"  # or "linear": 1 -> scale
    blob_noise: float = 0.0  # weight of a smooth field in the reveal noise
    order: str = "confidence"  # which tokens to keep: or "random", "halton"

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an int >= 1, got "
                             f"{self.steps!r}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got "
                             f"{self.guidance_scale}")
        if self.token_temperature <= 0:
            raise ValueError("token_temperature must be > 0")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be >= 1 or None")
        if self.blob_noise < 0:
            raise ValueError(f"blob_noise must be >= 0, got "
                             f"{self.blob_noise}")
        if self.order not in ("confidence", "random", "halton"):
            raise ValueError(f"unknown order {self.order!r}; allowed: "
                             "confidence, random, halton")
        if self.guidance_schedule not in ("constant", "linear"):
            raise ValueError(f"unknown guidance_schedule "
                             f"{self.guidance_schedule!r}; allowed: "
                             "constant, linear")

    def guidance_at(self, i: int) -> float:
        """CFG scale at step i: constant, or ramped linearly from 1 (the
        plain conditional model) at the first step to the full scale at
        the last, so early steps, which fix the layout and background from
        almost no context, are not pushed to paint the prompt's colours
        everywhere."""
        if self.guidance_schedule == "constant" or self.steps == 1:
            return self.guidance_scale
        return 1.0 + (self.guidance_scale - 1.0) * i / (self.steps - 1)


def micro_conditions(width: int, height: int, n: int, score: float = 9.0,
                device=None) -> torch.Tensor:
    """(n, 5) micro-conditions asked of the sampler: the image's size, no
    crop, and aesthetic `score` (9.0, the best; chapter 5)."""
    return torch.tensor([[width, height, 0, 0, score]], dtype=torch.float32,
                        device=device).expand(n, -1)


def cfg_mix(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on the logits of one batched forward whose
    first half is unconditional: l_u + s (l_c - l_u) (chapter 7)."""
    lu, lc = logits.chunk(2)
    return lu + scale * (lc - lu)


def _filter(logits: torch.Tensor, cfg: SamplerConfig) -> torch.Tensor:
    logits = logits / cfg.token_temperature
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        kth = logits.topk(cfg.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


def _gumbel(shape, generator, device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator).clamp_(1e-20, 1.0)
    return (-torch.log(-torch.log(u))).to(device)


def blob_field(b: int, h: int, w: int,
               generator: torch.Generator | None) -> torch.Tensor:
    """(B, h, w) smooth random field, zero mean and unit std per sample.

    Training hides regions by these keys (`masking.blob_keys`); added to
    the reveal noise, they leave the same kind of blobs masked."""
    k = blob_keys(b, h, w, generator).reshape(b, h, w)
    k = k - k.mean((1, 2), keepdim=True)
    return k / k.std((1, 2), keepdim=True).clamp_min(1e-6)


def _reveal_scores(logp: torch.Tensor, cfg: SamplerConfig, i: int,
                   generator: torch.Generator | None,
                   field) -> torch.Tensor:
    """Higher = revealed sooner. MaskGIT: log p + annealed Gumbel noise;
    "random": a uniform draw; "halton": the Halton-MaskGIT grid order,
    blind to the model (chapter 7)."""
    if cfg.order == "halton":
        b, h, w = logp.shape
        return -halton_ranks(h, w).to(logp).expand(b, h, w)
    if cfg.order == "random":
        return torch.rand(logp.shape, generator=generator).to(logp)
    t0, t1 = cfg.gumbel_temperature
    temp = t0 + (t1 - t0) * (i / max(cfg.steps - 1, 1))
    return logp + temp * (_gumbel(logp.shape, generator, logp.device)
                          + field)


@torch.no_grad()
def decode(model, cond: tuple[torch.Tensor, torch.Tensor],
           uncond: tuple[torch.Tensor, torch.Tensor] | None,
           micro_conds: torch.Tensor, grid: tuple[int, int],
           cfg: SamplerConfig = SamplerConfig(),
           generator: torch.Generator | None = None,
           init_tokens: torch.Tensor | None = None,
           callback: Callback | None = None) -> torch.Tensor:
    """Decode token grids (B, h, w) from text conditions.

    cond / uncond: (states (B, T, D), pooled (B, E)); uncond may be None
    when guidance_scale is 1 or 0. init_tokens: (B, h, w) with mask ids
    where tokens are to be generated (default: all masked). The generator
    (CPU) makes the result deterministic.
    """
    states, pooled = cond
    b, mask_id = states.shape[0], model.config.mask_id
    device = states.device
    h, w = grid
    if init_tokens is None:
        tokens = torch.full((b, h, w), mask_id, dtype=torch.long,
                            device=device)
    else:
        tokens = init_tokens.clone().to(device)
        if tokens.shape != (b, h, w):
            raise ValueError(f"init_tokens must be ({b}, {h}, {w}), got "
                             f"{tuple(tokens.shape)}")
    use_cfg = uncond is not None and cfg.guidance_scale != 1.0
    if use_cfg:
        states = torch.cat([uncond[0].expand_as(states), states])
        pooled = torch.cat([uncond[1].expand_as(pooled), pooled])
        micro_conds = torch.cat([micro_conds, micro_conds])
    L = h * w
    start = (tokens == mask_id).reshape(b, -1).sum(1)      # (B,)
    field = (cfg.blob_noise * blob_field(b, h, w, generator).to(device)
             if cfg.blob_noise > 0 else 0.0)
    for i in range(cfg.steps):
        masked = tokens == mask_id                         # (B, h, w)
        n_masked = masked.reshape(b, -1).sum(1)
        if int(n_masked.max()) == 0:
            break
        level = mask_rate_level(n_masked.double().cpu() / L).to(device)
        inp = torch.cat([tokens, tokens]) if use_cfg else tokens
        lv = torch.cat([level, level]) if use_cfg else level
        logits = model(inp, states, pooled, micro_conds, lv).float()
        if use_cfg:
            logits = cfg_mix(logits, cfg.guidance_at(i))
        logits = _filter(logits.permute(0, 2, 3, 1), cfg)  # (B, h, w, K)
        probs = F.softmax(logits, dim=-1)
        flat = probs.reshape(-1, probs.shape[-1]).cpu()
        sampled = torch.multinomial(flat, 1, generator=generator)
        sampled = sampled.reshape(b, h, w).to(device)
        sampled = torch.where(masked, sampled, tokens)     # keep known
        logp = torch.log(probs.gather(-1, sampled[..., None]).squeeze(-1)
                         .clamp_min(1e-30))
        conf = _reveal_scores(logp, cfg, i, generator, field)
        conf = conf.masked_fill(~masked, float("inf"))     # never re-mask
        keep_masked = torch.tensor([
            masked_count_after_step(i, cfg.steps, int(start[j]),
                                    int(n_masked[j]), cfg.schedule)
            for j in range(b)], device=device)
        order = conf.reshape(b, -1).argsort(dim=1)          # low first
        rank = order.argsort(dim=1).reshape(b, h, w)
        remask = rank < keep_masked[:, None, None]
        tokens = torch.where(remask, torch.full_like(sampled, mask_id),
                             sampled)
        if callback is not None:
            callback(i, tokens, conf)
    return tokens
