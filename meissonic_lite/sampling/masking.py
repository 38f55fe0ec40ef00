"""Masking: training mask rates, inference schedules, the mask-rate level
(chapter 4).

MaskGIT (Chang et al., 2022) trains a bidirectional transformer to fill in
randomly masked image tokens and decodes an image in a few parallel steps
that follow a cosine schedule. MUSE (Chang et al., 2023) draws the training
mask rate as r = cos(pi/2 * u), u ~ U(0, 1). Meissonic (Bai et al., 2025)
keeps both and adds the mask rate as a condition, discretised into 1000
levels. The released code feeds that level on two different scales in
training and inference (spec 1.4); here one function, `mask_rate_level`,
serves both, and the level is computed from the fraction of tokens that is
actually masked.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "NUM_LEVELS",
    "SCHEDULES",
    "Masked",
    "arccos_density",
    "blob_keys",
    "mask_rate_level",
    "mask_ratio",
    "mask_tokens",
    "masked_count_after_step",
    "sample_mask_rate",
    "tokens_revealed_per_step",
]

NUM_LEVELS = 1000  # the paper: the mask rate discretised into 1000 levels


def arccos_density(r: torch.Tensor) -> torch.Tensor:
    """p(r) = 2/pi (1 - r^2)^(-1/2): the density of r = cos(pi/2 u)."""
    return 2.0 / math.pi / torch.sqrt(1.0 - r.double() ** 2)


def sample_mask_rate(
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw r = cos(pi/2 u), u ~ U(0,1), per sample: (B,) float32."""
    u = torch.rand(batch, generator=generator, device=device)
    return torch.cos(0.5 * math.pi * u)


def mask_rate_level(r: torch.Tensor | float) -> torch.Tensor:
    """Mask fraction r in [0,1] -> integer level round(1000 r) in [0, 1000].

    The same function is used when training and when sampling, so a canvas
    with the same masked fraction always gets the same condition.
    """
    r = torch.as_tensor(r, dtype=torch.float64)
    if torch.any((r < 0) | (r > 1)):
        raise ValueError("mask fraction must lie in [0, 1]")
    return torch.round(r * NUM_LEVELS).long()


class Masked(NamedTuple):
    """A masked training batch."""

    input_ids: torch.Tensor  # (B, H, W) long, mask_id where masked
    labels: torch.Tensor  # (B, H, W) long, true code where masked else -100
    level: torch.Tensor  # (B,) long in [0, 1000]: round(1000 * masked/L)
    mask: torch.Tensor  # (B, H, W) bool, True where masked


def blob_keys(b: int, h: int, w: int,
              generator: torch.Generator | None,
              cells: int = 4) -> torch.Tensor:
    """(B, h*w) ranking keys whose smallest values form blobs.

    A smooth random field (cells x cells normals, bicubic-upsampled to the
    grid) plus a little uniform noise to break ties: masking the n
    smallest keys hides whole connected regions, the size of objects,
    instead of scattered tokens."""
    coarse = torch.randn(b, 1, cells, cells, generator=generator)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic",
                          align_corners=False).reshape(b, h * w)
    return field + 1e-3 * torch.rand(b, h * w, generator=generator)


def mask_tokens(
    tokens: torch.Tensor,
    generator: torch.Generator | None,
    mask_id: int,
    rate: torch.Tensor | None = None,
    blob_prob: float = 0.0,
) -> Masked:
    """Mask exactly max(1, round(L r)) tokens per sample.

    `tokens` is (B, H, W) or (B, L); `rate` (B,) defaults to the arccos
    draw. Positions are uniformly random (MUSE, Meissonic); with
    `blob_prob` > 0 that share of the samples hides blobs instead
    (`blob_keys`, needs (B, H, W)), so the model also learns to fill a
    region whose object is hidden completely, which is what the sampler
    asks of it once the background is decoded (chapter 6). Labels are
    -100 on visible tokens so the loss sees masked ones only.
    """
    if tokens.dtype != torch.long:
        raise TypeError(f"tokens must be int64, got {tokens.dtype}")
    if not 0.0 <= blob_prob <= 1.0:
        raise ValueError(f"blob_prob must be in [0, 1], got {blob_prob}")
    b = tokens.shape[0]
    flat = tokens.reshape(b, -1)  # (B, L)
    n_tok = flat.shape[1]
    if rate is None:
        rate = sample_mask_rate(b, generator, "cpu")
    rate = torch.as_tensor(rate, dtype=torch.float32).reshape(-1).cpu()
    if rate.numel() != b:
        raise ValueError(f"rate must have shape ({b},), got {rate.shape}")
    n_mask = torch.round(rate.double() * n_tok).long().clamp(1, n_tok)
    # uniform random subset per sample: the n smallest of L uniform keys
    keys = torch.rand(b, n_tok, generator=generator, device="cpu")
    if blob_prob > 0:               # extra draws only then: same stream
        if tokens.dim() != 3:
            raise ValueError("blob masks need (B, H, W) tokens")
        use = torch.rand(b, generator=generator) < blob_prob
        blobs = blob_keys(b, tokens.shape[1], tokens.shape[2], generator)
        keys = torch.where(use[:, None], blobs, keys)
    rank = keys.argsort(dim=1).argsort(dim=1)  # (B, L) rank of each key
    mask = (rank < n_mask[:, None]).to(tokens.device)  # (B, L)
    inp = torch.where(mask, torch.full_like(flat, mask_id), flat)
    labels = torch.where(mask, flat, torch.full_like(flat, -100))
    level = mask_rate_level(n_mask.double() / n_tok).to(tokens.device)
    shape = tokens.shape
    return Masked(inp.reshape(shape), labels.reshape(shape), level,
                  mask.reshape(shape))


def _cosine(t: float) -> float:
    return math.cos(0.5 * math.pi * t)


def _linear(t: float) -> float:
    return 1.0 - t


def _square(t: float) -> float:
    return 1.0 - t * t


def _sqrt(t: float) -> float:
    return 1.0 - math.sqrt(t)


# Masked fraction after a fraction t of the decoding is done (MaskGIT's
# mask_schedule.py names). Each falls from 1 at t=0 to 0 at t=1.
SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": _cosine, "linear": _linear, "square": _square,
    "sqrt": _sqrt,
}


def mask_ratio(t: float, schedule: str = "cosine") -> float:
    """Fraction of tokens still masked at progress t in [0, 1]."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; "
                         f"choose from {sorted(SCHEDULES)}")
    return SCHEDULES[schedule](min(max(float(t), 0.0), 1.0))


def masked_count_after_step(
    step: int, steps: int, num_tokens: int, num_masked: int,
    schedule: str = "cosine",
) -> int:
    """How many tokens stay masked after step `step` (0-based) of `steps`.

    Meissonic's scheduler (spec 2.2 step 6): floor(L * schedule((i+1)/N))
    with L the *total* token count, clamped to [1, masked - 1]; after the
    last step nothing is masked. The sampler calls this, so the book's
    tables and the sampler agree.
    """
    if not 0 <= step < steps:
        raise ValueError(f"step must be in [0, {steps}), got {step}")
    if step == steps - 1 or num_masked == 0:
        return 0
    target = math.floor(num_tokens * mask_ratio((step + 1) / steps,
                                                schedule))
    return max(1, min(target, num_masked - 1))


def tokens_revealed_per_step(
    num_tokens: int, steps: int, schedule: str = "cosine",
) -> list[int]:
    """Tokens decoded at each step, starting from a fully masked canvas."""
    if steps < 1 or num_tokens < 1:
        raise ValueError("need steps >= 1 and num_tokens >= 1")
    masked, out = num_tokens, []
    for i in range(steps):
        new = masked_count_after_step(i, steps, num_tokens, masked,
                                      schedule)
        out.append(masked - new)
        masked = new
    return out


def halton_ranks(h: int, w: int) -> torch.Tensor:
    """(h, w) reveal rank of each position in the Halton-MaskGIT order
    (Besnier et al., 2025): the 2-D Halton sequence (bases 2 and 3) walks
    the grid so that each step's tokens are spread out, never clustered."""
    if h < 1 or w < 1:
        raise ValueError(f"need h, w >= 1, got {h}x{w}")
    return torch.tensor(_halton_ranks(h, w)).reshape(h, w)


@functools.lru_cache(maxsize=16)
def _halton_ranks(h: int, w: int) -> tuple[int, ...]:
    """The ranks, computed once per grid (the sampler asks every step)."""
    seen: dict[int, int] = {}
    i = 1
    while len(seen) < h * w:
        pos = int(_radical_inverse(i, 3) * h) * w + int(
            _radical_inverse(i, 2) * w)
        seen.setdefault(pos, len(seen))
        i += 1
    ranks = [0] * (h * w)
    for pos, rank in seen.items():
        ranks[pos] = rank
    return tuple(ranks)


def _radical_inverse(i: int, base: int) -> float:
    """The i-th element of the van der Corput sequence in `base`."""
    f, r = 1.0, 0.0
    while i:
        f /= base
        r += f * (i % base)
        i //= base
    return r
