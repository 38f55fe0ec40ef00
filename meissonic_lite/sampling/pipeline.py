"""Text-to-image, end to end: prompt -> tokens -> image (chapter 7).

`MeissonicLitePipeline` wires the three models and the sampler together
the way diffusers' pipelines do (same argument names): the text encoder
gives hidden states and a pooled embedding for the prompt and for the
negative (or empty) prompt; the sampler decodes a token grid with CFG; the
VQ decoder turns tokens into pixels. Every argument is checked before any
work starts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.pretrained import load_text_encoder
from ..models.transformer import MeissonicTransformer
from ..models.vq import VQModel
from ..utils import pick_device, to_pil
from .decode import SamplerConfig, decode, micro_conditions

MAX_BATCH_BYTES = 8 * 2**30     # refuse batches whose activations exceed
# Sampler defaults of the shipped model: the best cell of the steps x CFG
# sweep (chapter 7, weights/sweep.json); editing and evaluation use them.
DEFAULT_STEPS = 8
DEFAULT_GUIDANCE = 2.0
DEFAULT_GUIDANCE_SCHEDULE = "constant"
DEFAULT_BLOB_NOISE = 0.0


class MeissonicLitePipeline:
    """VQ + text encoder + transformer + sampler, diffusers-style."""

    def __init__(self, vq, text_encoder, transformer,
                 device: str | torch.device = "auto"):
        self.device = pick_device(device)
        self.vq = vq.to(self.device).eval()
        self.text_encoder = text_encoder.to(self.device).eval()
        self.transformer = transformer.to(self.device).eval()

    def check_models(self) -> None:
        """Raise ValueError when the three models do not fit together."""
        c, te = self.transformer.config, self.text_encoder
        v = self.vq.config
        bad = [f"{what}: transformer {a} vs {other} {b}"
               for what, a, other, b in (
                   ("codebook size", c.codebook_size, "VQ", v.num_codes),
                   ("text width", c.text_dim, "text encoder", te.hidden_dim),
                   ("pooled width", c.pooled_dim, "text encoder",
                    te.pooled_dim))
               if a != b]
        if bad:
            raise ValueError("the models do not fit together (" +
                             "; ".join(bad) + ")")

    @classmethod
    def from_pretrained(cls, device: str | torch.device = "auto", *,
                        transformer_path: str | None = None,
                        vq_path: str | None = None,
                        text_encoder_path: str | None = None
                        ) -> MeissonicLitePipeline:
        """Load the shipped VQ, text encoder and transformer (offline);
        a `*_path` loads that file instead of the shipped one. Raises
        ValueError when the three models do not fit together."""
        pipe = cls(VQModel.from_pretrained(vq_path),
                   load_text_encoder(text_encoder_path),
                   MeissonicTransformer.from_pretrained(transformer_path),
                   device)
        pipe.check_models()
        return pipe

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this many pixels."""
        f = self.vq.config.factor
        return f * self.transformer.config.compression

    def _check(self, prompts, negative, steps, scale, height, width, n):
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)) or not prompts or \
                not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompt must be a string or a non-empty list "
                             "of strings ('' is the unconditional prompt)")
        if negative is not None:
            negative = [negative] * len(prompts) if isinstance(
                negative, str) else list(negative)
            if len(negative) != len(prompts) or \
                    not all(isinstance(p, str) for p in negative):
                raise ValueError("negative_prompt must be a string or a "
                                 "list of strings, one per prompt")
        m = self.multiple
        for name, v in (("height", height), ("width", width)):
            if not isinstance(v, int) or v < m or v % m:
                raise ValueError(f"{name} must be a positive multiple of "
                                 f"{m} px for this model, got {v!r}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"num_images_per_prompt must be >= 1, got {n}")
        SamplerConfig(steps=steps, guidance_scale=scale)   # validates
        b = len(prompts) * n * (2 if scale != 1.0 else 1)
        c = self.transformer.config
        tokens = (height // self.vq.config.factor) * \
            (width // self.vq.config.factor) + 77
        est = b * tokens * c.dim * 4 * 24 * (c.num_dual + c.num_single)
        if est > MAX_BATCH_BYTES:
            raise ValueError(f"batch of {b} images at {width}x{height} "
                             f"needs about {est / 2**30:.1f} GiB of "
                             "activations; lower num_images_per_prompt")
        return list(prompts), negative

    @torch.no_grad()
    def conditions(self, prompts: list[str], negative: list[str] | None,
                   height: int, width: int, aesthetic_score: float = 9.0):
        """(cond, uncond, micro_conds) for the sampler, one row per prompt.

        Text-to-image and editing (`editing.py`) share it, so an edit is
        conditioned exactly as a generation of the same size would be."""
        cond = self.text_encoder.encode(prompts)
        b = len(prompts)
        uncond = (self.text_encoder.null(b) if negative is None
                  else self.text_encoder.encode(negative))
        micro = micro_conditions(width, height, b, aesthetic_score,
                                 self.device)
        return cond, uncond, micro

    @torch.no_grad()
    def __call__(self, prompt: str | list[str],
                 negative_prompt: str | list[str] | None = None,
                 num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale: float = DEFAULT_GUIDANCE,
                 height: int = 128, width: int = 128,
                 num_images_per_prompt: int = 1,
                 generator: torch.Generator | None = None,
                 aesthetic_score: float = 9.0,
                 temperature: tuple[float, float] = (2.0, 0.0),
                 token_temperature: float = 1.0,
                 schedule: str = "cosine",
                 guidance_schedule: str = DEFAULT_GUIDANCE_SCHEDULE,
                 blob_noise: float = DEFAULT_BLOB_NOISE,
                 callback: Callable | None = None,
                 output_type: str = "pil"):
        """Generate images; returns PIL images (or a (B,3,H,W) tensor).

        `temperature` anneals the Gumbel noise on the reveal order (MaskGIT);
        `token_temperature` divides the logits each token is drawn from
        (below 1: fewer stray colours, chapter 7)."""
        prompts, negative = self._check(
            prompt, negative_prompt, num_inference_steps, guidance_scale,
            height, width, num_images_per_prompt)
        if not token_temperature > 0:
            raise ValueError(f"token_temperature must be > 0, got "
                             f"{token_temperature}")
        if not 0 <= aesthetic_score <= 10:
            raise ValueError("aesthetic_score must be in [0, 10]")
        if output_type not in ("pil", "pt"):
            raise ValueError("output_type must be 'pil' or 'pt'")
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        if negative is not None:
            negative = [p for p in negative
                        for _ in range(num_images_per_prompt)]
        cond, uncond, micro = self.conditions(prompts, negative, height,
                                              width, aesthetic_score)
        f = self.vq.config.factor
        cfg = SamplerConfig(num_inference_steps, guidance_scale, schedule,
                            temperature,
                            token_temperature=token_temperature,
                            guidance_schedule=guidance_schedule,
                            blob_noise=blob_noise)
        tokens = decode(self.transformer, cond, uncond, micro,
                        (height // f, width // f), cfg, generator,
                        callback=callback)
        images = self.vq.decode(tokens).float().clamp(0, 1).cpu()
        if output_type == "pt":
            return images
        return to_pil(images)
