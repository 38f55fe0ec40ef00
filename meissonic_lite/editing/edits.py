"""Zero-shot editing: inpainting, outpainting and mask-free (img2img) edits
(chapter 8).

A masked-token model learns P(x_i | x_Lambda) for *any* visible subset
Lambda (paper section 2.1), so editing needs no editing training (paper
section 3.3, spec section 3): encode the image to tokens, set the tokens
to change to [MASK], and run the text-to-image decoder from that partly
masked canvas with the new prompt. The sampler keeps every known token
as it is, so everything outside the mask is unchanged token for token.

Our choices where the official code has rough edges (spec 3 and 9):
- the pixel mask reaches the token grid by a coverage rule (`masks`), not
  by resizing it to the grid, so thin regions never vanish;
- no scheduler is shared or mutated: every edit uses the schedule it is
  given (cosine by default), over the tokens that start masked;
- img2img re-masks exactly round(strength * L) tokens, so strength 1.0
  regenerates everything and 0.0 returns the input's reconstruction.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import torch
from PIL import Image

from ..sampling.decode import SamplerConfig, cfg_mix, decode
from ..sampling.masking import mask_rate_level, mask_ratio
from ..sampling.pipeline import (
    DEFAULT_BLOB_NOISE,
    DEFAULT_GUIDANCE,
    DEFAULT_GUIDANCE_SCHEDULE,
    DEFAULT_STEPS,
)
from ..utils import to_pil
from .masks import (
    as_bool_mask,
    box_to_mask,
    check_canvas,
    check_extension,
    check_token_mask,
    extended_canvas,
    image_tensor,
    pixel_mask_to_tokens,
)

if TYPE_CHECKING:              # typing.Unpack is Python >= 3.11
    from typing_extensions import Unpack

REMASK = ("random", "confidence")


@dataclass
class EditResult:
    """An edit's output and what it started from.

    `tokens` (h, w) is the edited grid and `token_mask` (h, w) marks the
    tokens that were generated (True) rather than kept. `source_tokens`
    are the input's tokens; they sit at `offset` (top, left, in tokens)
    inside `tokens` (non-zero only for outpainting).
    """

    image: Image.Image
    tokens: torch.Tensor
    token_mask: torch.Tensor
    source_tokens: torch.Tensor
    offset: tuple[int, int]
    mode: str
    seconds: float

    def changed_outside(self) -> int:
        """How many kept tokens differ from the source (always 0)."""
        t, left = self.offset
        h, w = self.source_tokens.shape
        kept = ~self.token_mask[t:t + h, left:left + w]
        region = self.tokens[t:t + h, left:left + w]
        return int((region != self.source_tokens)[kept].sum())


# -- shared options and the one decoding path -------------------------------
class EditOptions(TypedDict, total=False):
    """The keyword options every edit shares with `pipe()`; `EDIT_DEFAULTS`
    holds their values when left out."""

    negative_prompt: str | None
    num_inference_steps: int
    guidance_scale: float
    generator: torch.Generator | None
    aesthetic_score: float
    temperature: tuple[float, float]       # Gumbel noise (start, end)
    schedule: str                          # mask schedule name
    callback: Callable | None


EDIT_DEFAULTS: EditOptions = {
    "negative_prompt": None, "num_inference_steps": DEFAULT_STEPS,
    "guidance_scale": DEFAULT_GUIDANCE, "generator": None,
    "aesthetic_score": 9.0, "temperature": (2.0, 0.0),
    "schedule": "cosine", "callback": None}


@dataclass
class _Job:
    """Validated decoding settings shared by the three edits."""

    prompt: str
    negative: str | None
    sampler: SamplerConfig
    aesthetic: float
    height: int
    width: int
    generator: torch.Generator | None
    callback: Callable | None


def _job(pipe, edit: str, prompt, height: int, width: int,
         options: EditOptions) -> _Job:
    """Check `options` (names and values) for `edit` and fill defaults."""
    unknown = sorted(set(options) - set(EDIT_DEFAULTS))
    if unknown:
        raise TypeError(f"{edit}() got unexpected keyword argument(s) "
                        f"{', '.join(unknown)}; allowed: "
                        f"{', '.join(EDIT_DEFAULTS)}")
    o = {**EDIT_DEFAULTS, **options}
    negative_prompt, steps = o["negative_prompt"], o["num_inference_steps"]
    guidance, aesthetic = o["guidance_scale"], o["aesthetic_score"]
    temperature, schedule = o["temperature"], o["schedule"]
    check_canvas(pipe, height, width, "canvas")
    if not isinstance(prompt, str):
        raise ValueError(  # noqa: TRY004 (the book's convention)
            f"prompt must be a string ('' is unconditional), got "
            f"{type(prompt).__name__}")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise ValueError("negative_prompt must be a string or None")
    pipe._check(prompt, negative_prompt, steps, guidance, height, width, 1)
    if not 0 <= _real(aesthetic, "aesthetic_score") <= 10:
        raise ValueError(f"aesthetic_score must be in [0, 10], got "
                         f"{aesthetic}")
    if len(tuple(temperature)) != 2:
        raise ValueError("temperature must be (start, end)")
    mask_ratio(0.5, schedule)                      # validates the name
    cfg = SamplerConfig(steps, guidance, schedule, tuple(temperature),
                        guidance_schedule=DEFAULT_GUIDANCE_SCHEDULE,
                        blob_noise=DEFAULT_BLOB_NOISE)
    return _Job(prompt, negative_prompt, cfg, float(aesthetic), height,
                width, o["generator"], o["callback"])


def _real(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) \
            or math.isnan(v):
        raise ValueError(f"{name} must be a number, got {v!r}")
    return float(v)


def _conditions(pipe, job: _Job):
    neg = None if job.negative is None else [job.negative]
    return pipe.conditions([job.prompt], neg, job.height, job.width,
                           job.aesthetic)


def _generate(pipe, job: _Job, init: torch.Tensor) -> torch.Tensor:
    """Decode the masked tokens of `init` (h, w); known tokens stay."""
    cond, uncond, micro = _conditions(pipe, job)
    n_masked = int((init == pipe.transformer.config.mask_id).sum())
    # More steps than masked tokens only adds empty steps.
    cfg = SamplerConfig(min(job.sampler.steps, max(n_masked, 1)),
                        job.sampler.guidance_scale, job.sampler.schedule,
                        job.sampler.gumbel_temperature)
    use_uncond = uncond if cfg.guidance_scale != 1.0 else None
    out = decode(pipe.transformer, cond, use_uncond, micro, init.shape,
                 cfg, job.generator, init[None].to(pipe.device),
                 job.callback)
    return out[0].cpu()


def _result(pipe, tokens, token_mask, source, offset, mode, t0
            ) -> EditResult:
    img = to_pil(pipe.vq.decode(tokens[None])[0])
    return EditResult(img, tokens, token_mask.cpu(),
                      source, offset, mode, time.perf_counter() - t0)


# -- the three edits ---------------------------------------------------------
@torch.no_grad()
def inpaint(pipe, image, mask=None, prompt: str = "", *, box=None,
            rule: str = "any", threshold: float = 0.5, dilate: int = 0,
            **options: Unpack[EditOptions]) -> EditResult:
    """Regenerate the masked region under `prompt`; keep the rest exactly.

    Give a pixel `mask` (white / True = repaint, same size as the image)
    or a `box` (x0, y0, x1, y1); `rule`, `threshold` and `dilate` map it
    to tokens (`pixel_mask_to_tokens`). `options`: `EditOptions`, as in
    `pipe()`.
    """
    x = image_tensor(pipe, image)
    H, W = x.shape[-2:]
    job = _job(pipe, "inpaint", prompt, H, W, options)
    if (mask is None) == (box is None):
        raise ValueError("give exactly one of mask= or box=")
    if box is not None:
        mask = box_to_mask(box, (W, H))
    m = as_bool_mask(mask)
    if m.shape != (H, W):
        raise ValueError(f"mask is {m.shape[1]}x{m.shape[0]} but the image "
                         f"is {W}x{H}: they must match")
    tok_mask = pixel_mask_to_tokens(m, pipe.vq.config.factor, rule,
                                    threshold, dilate)
    check_token_mask(tok_mask)
    t0 = time.perf_counter()
    source = pipe.vq.encode(x)[0].cpu()                     # (h, w)
    init = source.masked_fill(tok_mask, pipe.transformer.config.mask_id)
    tokens = _generate(pipe, job, init)
    return _result(pipe, tokens, tok_mask, source, (0, 0), "inpaint", t0)


@torch.no_grad()
def outpaint(pipe, image, prompt: str = "", *, left: int = 0,
             right: int = 0, top: int = 0, bottom: int = 0,
             **options: Unpack[EditOptions]) -> EditResult:
    """Extend the canvas by `left`/`right`/`top`/`bottom` px (multiples of
    `pipe.multiple`); the original tokens stay in place, new ones are
    generated under `prompt` (which should describe the whole canvas)."""
    x = image_tensor(pipe, image)
    H, W = x.shape[-2:]
    check_canvas(pipe, H, W, "image")
    check_extension(pipe.multiple, left=left, right=right, top=top,
                    bottom=bottom)
    H2, W2 = H + top + bottom, W + left + right
    job = _job(pipe, "outpaint", prompt, H2, W2, options)
    t0 = time.perf_counter()
    f = pipe.vq.config.factor
    source = pipe.vq.encode(x)[0].cpu()
    ot, ol = top // f, left // f
    init, tok_mask = extended_canvas(source, (H2 // f, W2 // f), (ot, ol),
                                     pipe.transformer.config.mask_id)
    tokens = _generate(pipe, job, init)
    return _result(pipe, tokens, tok_mask, source, (ot, ol), "outpaint", t0)


@torch.no_grad()
def score_tokens(pipe, tokens: torch.Tensor, prompt: str,
                 negative_prompt: str | None = None,
                 guidance_scale: float = DEFAULT_GUIDANCE,
                 aesthetic_score: float = 9.0) -> torch.Tensor:
    """log p(current token | prompt, its neighbours), (h, w).

    The model is trained on masked positions only, so a token must be
    masked to be scored: two complementary checkerboard halves, each
    scored with the other half visible, in one batched forward pass.
    Low scores mark tokens that disagree with the prompt."""
    h, w = tokens.shape
    f = pipe.vq.config.factor
    job = _job(pipe, "score_tokens", prompt, h * f, w * f,
               {"negative_prompt": negative_prompt, "num_inference_steps": 1,
                "guidance_scale": guidance_scale,
                "aesthetic_score": aesthetic_score})
    cond, uncond, micro = _conditions(pipe, job)
    mask_id = pipe.transformer.config.mask_id
    tokens = tokens.to(pipe.device)
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    even = ((ii + jj) % 2 == 0).to(pipe.device)             # (h, w)
    masks = torch.stack([even, ~even])                      # (2, h, w)
    inp = torch.where(masks, torch.full_like(masks, mask_id, dtype=torch.long),
                      tokens.expand(2, -1, -1))
    level = mask_rate_level(masks.reshape(2, -1).double().mean(1).cpu())
    states, pooled = (t.expand(2, *t.shape[1:]) for t in cond)
    micro = micro.expand(2, -1)
    use_cfg = guidance_scale != 1.0
    if use_cfg:
        states = torch.cat([uncond[0].expand_as(states), states])
        pooled = torch.cat([uncond[1].expand_as(pooled), pooled])
        micro, inp = torch.cat([micro, micro]), torch.cat([inp, inp])
        level = torch.cat([level, level])
    logits = pipe.transformer(inp, states, pooled, micro,
                              level.to(pipe.device)).float()
    if use_cfg:
        logits = cfg_mix(logits, guidance_scale)
    logp = logits.log_softmax(1)                             # (2, K, h, w)
    got = logp.gather(1, tokens.expand(2, 1, h, w).clone()).squeeze(1)
    return torch.where(even, got[0], got[1]).cpu()


@torch.no_grad()
def img2img(pipe, image, prompt: str = "", strength: float = 0.5,
            remask: str = "random", **options: Unpack[EditOptions]
            ) -> EditResult:
    """Mask-free edit: re-mask round(strength * L) tokens and decode them
    under `prompt`. `remask`: "random" positions, or "confidence" (the
    tokens `score_tokens` finds least likely under the new prompt).
    strength 1.0 regenerates every token; 0.0 returns the reconstruction
    without decoding."""
    x = image_tensor(pipe, image)
    H, W = x.shape[-2:]
    job = _job(pipe, "img2img", prompt, H, W, options)
    if not 0.0 <= _real(strength, "strength") <= 1.0:
        raise ValueError(f"strength must be a number in [0, 1], got "
                         f"{strength!r}")
    if remask not in REMASK:
        raise ValueError(f"remask must be one of {', '.join(REMASK)}, got "
                         f"{remask!r}")
    t0 = time.perf_counter()
    source = pipe.vq.encode(x)[0].cpu()
    h, w = source.shape
    L = h * w
    k = round(strength * L)
    tok_mask = torch.zeros(L, dtype=torch.bool)
    if k == L:
        tok_mask[:] = True
    elif k and remask == "random":
        tok_mask[torch.randperm(L, generator=job.generator)[:k]] = True
    elif k:
        score = score_tokens(pipe, source, prompt, job.negative,
                             job.sampler.guidance_scale,
                             job.aesthetic).reshape(-1)
        tok_mask[score.argsort(stable=True)[:k]] = True
    tok_mask = tok_mask.reshape(h, w)
    if k == 0:
        return _result(pipe, source.clone(), tok_mask, source, (0, 0),
                       "img2img", t0)
    init = source.masked_fill(tok_mask, pipe.transformer.config.mask_id)
    tokens = _generate(pipe, job, init)
    return _result(pipe, tokens, tok_mask, source, (0, 0), "img2img", t0)
