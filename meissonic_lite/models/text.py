"""The text encoder: a tiny CLIP built with open_clip, and its two outputs
(chapter 3).

Meissonic conditions on CLIP-ViT-H/14 (spec 1.3): the *penultimate* layer's
hidden states (B, 77, 1024) feed the transformer's text stream, and the
projected EOT embedding `text_embeds` (B, 1024) feeds AdaLN together with
the micro-conditions. The empty prompt's encoding is the null condition for
classifier-free guidance. We cannot download LAION weights, so the book
trains a tiny CLIP on the Shapes world with open_clip's own classes and its
bundled BPE tokenizer (`meissonic-lite train-clip`). The same CLIP is the
book's CLIP-score / CLIP-I / CLIP-T evaluator. Generation needs only the
text half: `from_pretrained(text_only=True)` loads it without importing
open_clip (`text_tower`), which saves about 2 s of start-up.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .model_files import corrupt, read_model_file, write_model_file
from .text_tower import TextTower, load_tokenizer

if TYPE_CHECKING:
    import open_clip

WEIGHTS = Path(__file__).parent.parent / "weights" / "clip.safetensors"
REBUILD = "meissonic-lite train-clip --ship"


@dataclass
class TextEncoderConfig:
    """Shape of the tiny CLIP; `text_width` is D, `embed_dim` is E."""

    embed_dim: int = 128          # pooled / projection width E
    text_width: int = 128         # hidden-state width D
    text_layers: int = 4
    text_heads: int = 4
    context_length: int = 77      # as Meissonic; our captions need <= 65
    vocab_size: int = 49408       # open_clip's bundled BPE vocabulary
    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 4
    vision_head_width: int = 32
    init_seed: int = 0            # token-table init; untouched rows rebuild

    @classmethod
    def from_dict(cls, d: dict) -> TextEncoderConfig:
        """Build from a dict, ignoring unknown keys (forward compatible)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def init_token_table(cfg: TextEncoderConfig) -> torch.Tensor:
    """The seeded initial token table (open_clip's N(0, 0.02) init)."""
    g = torch.Generator().manual_seed(cfg.init_seed)
    return torch.randn(cfg.vocab_size, cfg.text_width, generator=g) * 0.02


def build_clip(cfg: TextEncoderConfig,
               text_only: bool = False) -> open_clip.CLIP | TextTower:
    """An open_clip.CLIP with a custom config: no download, no hub; or,
    `text_only`, its text half without importing open_clip."""
    if text_only:
        model = TextTower(cfg)
    else:
        import open_clip  # ~2 s (torchvision, timm): only when needed
        vision = open_clip.CLIPVisionCfg(
            layers=cfg.vision_layers, width=cfg.vision_width,
            head_width=cfg.vision_head_width, patch_size=cfg.patch_size,
            image_size=cfg.image_size)
        text = open_clip.CLIPTextCfg(
            context_length=cfg.context_length, vocab_size=cfg.vocab_size,
            width=cfg.text_width, heads=cfg.text_heads,
            layers=cfg.text_layers)
        model = open_clip.CLIP(cfg.embed_dim, vision, text)
    with torch.no_grad():
        model.token_embedding.weight.copy_(init_token_table(cfg))
    return model


class TextEncoder(torch.nn.Module):
    """Prompts -> (penultimate hidden states (B, L, D), pooled (B, E)).

    Frozen by default (stages 1-3); `set_trainable(True)` unfreezes it
    (stage 4). The empty prompt's encoding is cached while frozen.
    """

    def __init__(self, clip: open_clip.CLIP, cfg: TextEncoderConfig,
                 trainable: bool = False):
        super().__init__()
        self.clip, self.cfg = clip, cfg
        self.tokenizer = load_tokenizer(cfg.context_length)
        self._null: tuple[torch.Tensor, torch.Tensor] | None = None
        self.set_trainable(trainable)

    # -- state -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return self.clip.token_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype; outputs come back in it."""
        return self.clip.token_embedding.weight.dtype

    @property
    def hidden_dim(self) -> int:
        """D, the width of the hidden states (transformer `text_dim`)."""
        return self.cfg.text_width

    @property
    def pooled_dim(self) -> int:
        """E, the width of the pooled embedding (`pooled_dim`)."""
        return self.cfg.embed_dim

    def set_trainable(self, trainable: bool = True) -> TextEncoder:
        """Freeze (eval, no grads) or unfreeze (train, grads) the CLIP."""
        self.trainable = bool(trainable)
        self.clip.requires_grad_(self.trainable)
        self.clip.train(self.trainable)
        self._null = None
        return self

    def train(self, mode: bool = True) -> TextEncoder:
        """Keep a frozen encoder in eval mode even inside model.train()."""
        super().train(mode)
        self.clip.train(mode and self.trainable)
        return self

    # -- one file per model: weights + config (model_files) -------------
    def save_pretrained(self, path: str | Path,
                        dtype: torch.dtype = torch.float16) -> None:
        """Write weights + config as one safetensors file, atomically
        (the token table keeps only the rows training touched)."""
        if self.clip.visual is None:
            raise ValueError("this text encoder was loaded text_only and has "
                             "no image tower to save; load it whole")
        save(self.clip, self.cfg, path, dtype)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None,
                        device: str = "cpu",
                        dtype: torch.dtype = torch.float32,
                        trainable: bool = False,
                        text_only: bool = False) -> TextEncoder:
        """Load the shipped tiny CLIP (or a file saved by `train-clip`);
        `text_only`: only its text tower (prompts, no images), fast."""
        path = Path(path) if path is not None else WEIGHTS
        cfg, state = read_model_file(path, "text-encoder", REBUILD)
        try:
            cfg = TextEncoderConfig.from_dict(cfg)
            clip = build_clip(cfg, text_only)
            load_state(clip, cfg, state)
        except Exception as e:  # a file of another shape or model
            raise corrupt(path, "text-encoder", REBUILD, e) from e
        return cls(clip, cfg, trainable=trainable).to(device=device,
                                                      dtype=dtype)

    def _apply(self, fn, *args, **kwargs):
        self._null = None                    # device / dtype changed
        return super()._apply(fn, *args, **kwargs)

    # -- text ----------------------------------------------------------------
    def tokenize(self, prompts: str | list[str]) -> torch.Tensor:
        """BPE ids (B, L); warns when a prompt is cut to the context."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)):
            raise TypeError("prompts must be a str or a list of str, got "
                            f"{type(prompts).__name__}")
        L = self.cfg.context_length
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise TypeError(f"prompt {i} must be a str, got "
                                f"{type(p).__name__}: {p!r}")
            n = len(self.tokenizer.encode(p)) + 2     # + <sot>, <eot>
            if n > L:
                warnings.warn(
                    f"prompt {i} has {n} BPE tokens (with start/end) and "
                    f"was truncated to the context length {L}: "
                    f"{p[:40]!r}...", stacklevel=3)
        return self.tokenizer(list(prompts))

    def text_forward(self, ids: torch.Tensor, trim: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, L) -> (penultimate (B, L, D), pooled (B, E)).

        `trim` drops the padding after the longest prompt: exact for the
        pooled output (the mask is causal) and faster for training.
        """
        c = self.clip
        ids = ids.to(self.device)
        if trim:
            ids = ids[:, :int(ids.argmax(-1).max()) + 1]
        n = ids.shape[1]
        x = c.token_embedding(ids) + c.positional_embedding[:n]  # (B, n, D)
        mask = c.attn_mask[:n, :n].to(x.dtype)
        blocks = c.transformer.resblocks
        for blk in blocks[:-1]:
            x = blk(x, attn_mask=mask)
        penultimate = x                        # hidden_states[-2], pre-LN
        x = c.ln_final(blocks[-1](x, attn_mask=mask))
        eot = x[torch.arange(x.shape[0], device=x.device), ids.argmax(-1)]
        proj = c.text_projection
        if isinstance(proj, torch.nn.Linear):
            return penultimate, proj(eot)
        return penultimate, eot @ proj                           # (B, E)

    def encode(self, prompts: str | list[str], batch_size: int = 256
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (hidden (B, L, D) penultimate, pooled (B, E))."""
        ids = self.tokenize(prompts)
        if ids.shape[0] == 0:
            raise ValueError("prompts is empty: pass at least one prompt "
                             "(use '' for the null condition)")
        grad = self.trainable and torch.is_grad_enabled()
        hs, ps = [], []
        with torch.set_grad_enabled(grad):
            for i in range(0, ids.shape[0], batch_size):
                h, p = self.text_forward(ids[i:i + batch_size])
                hs.append(h)
                ps.append(p)
        return torch.cat(hs), torch.cat(ps)

    def null(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The empty prompt's encoding (the CFG null condition), cached."""
        if self.trainable:
            h, p = self.encode("")
        else:
            if self._null is None:
                self._null = self.encode("")
            h, p = self._null
        return (h.expand(batch, -1, -1), p.expand(batch, -1))

    # -- images and scores ---------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] -> embeddings (B, E)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError("images must be (B, 3, H, W) in [0, 1], got "
                             f"shape {tuple(images.shape)}")
        if self.clip.visual is None:
            raise ValueError("this text encoder was loaded text_only: load "
                             "it with text_only=False to encode images")
        from open_clip.constants import (  # loaded already (visual)
            OPENAI_DATASET_MEAN,
            OPENAI_DATASET_STD,
        )
        x = images.to(self.device, torch.float32)
        s = self.cfg.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear",
                              antialias=True, align_corners=False)
        mean = torch.tensor(OPENAI_DATASET_MEAN, device=x.device)
        std = torch.tensor(OPENAI_DATASET_STD, device=x.device)
        x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        x = x.to(self.dtype)                                # (B, 3, S, S)
        with torch.set_grad_enabled(self.trainable and
                                    torch.is_grad_enabled()):
            return self.clip.encode_image(x)

    @torch.no_grad()
    def similarity(self, images: torch.Tensor, prompts: list[str]
                   ) -> torch.Tensor:
        """Cosine similarity matrix (N images, M prompts)."""
        im = F.normalize(self.encode_image(images).float(), dim=-1)
        tx = F.normalize(self.encode(prompts)[1].float(), dim=-1)
        return im @ tx.T

    @torch.no_grad()
    def clip_score(self, images: torch.Tensor, prompts: list[str]
                   ) -> torch.Tensor:
        """CLIP-score per pair: 100 * max(cos(image_i, prompt_i), 0)."""
        if len(prompts) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but "
                             f"{len(prompts)} prompts: pass one each")
        cos = self.similarity(images, prompts).diagonal()
        return 100 * cos.clamp(min=0)

    @torch.no_grad()
    def clip_t(self, images: torch.Tensor, prompts: list[str]
               ) -> torch.Tensor:
        """CLIP-T per pair: image-text cosine similarity (B,)."""
        return self.clip_score(images, prompts) / 100

    @torch.no_grad()
    def clip_i(self, images_a: torch.Tensor, images_b: torch.Tensor
               ) -> torch.Tensor:
        """CLIP-I per pair: image-image cosine similarity (B,)."""
        if images_a.shape[0] != images_b.shape[0]:
            raise ValueError("clip_i needs as many images in both sets, "
                             f"got {images_a.shape[0]} and "
                             f"{images_b.shape[0]}")
        a = F.normalize(self.encode_image(images_a).float(), dim=-1)
        b = F.normalize(self.encode_image(images_b).float(), dim=-1)
        return (a * b).sum(-1)


# -- saving and loading -------------------------------------------------------
def state_for_saving(clip: open_clip.CLIP, cfg: TextEncoderConfig,
                     dtype: torch.dtype = torch.float16) -> dict:
    """The state dict to ship: the token table keeps only trained rows.

    Training never touches rows of BPE tokens our captions do not use (no
    gradient, no weight decay), so they still equal the seeded init and
    are rebuilt from `init_seed` at load time instead of being stored.
    """
    sd = {k: v.detach().cpu() for k, v in clip.state_dict().items()}
    table = sd.pop("token_embedding.weight").float()
    rows = (table != init_token_table(cfg)).any(1).nonzero()[:, 0]
    sd = {k: v.to(dtype) if v.is_floating_point() else v
          for k, v in sd.items()}
    sd["token_embedding.rows"] = rows
    sd["token_embedding.values"] = table[rows].to(dtype)
    return sd


def load_state(clip: open_clip.CLIP, cfg: TextEncoderConfig,
               sd: dict) -> None:
    """Inverse of `state_for_saving` (also accepts a full state dict)."""
    sd = dict(sd)
    if "token_embedding.rows" in sd:
        table = init_token_table(cfg)
        table[sd.pop("token_embedding.rows")] = \
            sd.pop("token_embedding.values").float()
        sd["token_embedding.weight"] = table
    if clip.visual is None:                    # TextTower: the text half
        sd = {k: v for k, v in sd.items() if not k.startswith("visual.")}
    clip.load_state_dict({k: v.float() for k, v in sd.items()})


def from_pretrained(path: str | Path | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32,
                    trainable: bool = False,
                    text_only: bool = False) -> TextEncoder:
    """Load the shipped tiny CLIP: `TextEncoder.from_pretrained`."""
    return TextEncoder.from_pretrained(path, device, dtype, trainable,
                                       text_only)


def save(clip: open_clip.CLIP, cfg: TextEncoderConfig, path: str | Path,
         dtype: torch.dtype = torch.float16) -> None:
    """Write weights + config as one safetensors file, atomically."""
    write_model_file(path, state_for_saving(clip, cfg, dtype), asdict(cfg),
                     dtype)


def from_open_clip(model_name: str = "ViT-H-14",
                   pretrained: str | None = "laion2b_s32b_b79k",
                   device: str | torch.device = "cpu",
                   trainable: bool = False) -> TextEncoder:
    """The real thing, for readers with internet: open_clip weights.

    Never needed by the book. `pretrained=None` builds the architecture
    with random weights and downloads nothing (build it under
    `torch.device('meta')` to check shapes without allocating 4 GB).
    """
    import open_clip  # ~2 s (torchvision, timm): only when needed
    clip = open_clip.create_model(model_name, pretrained=pretrained,
                                  device=device)
    mc = open_clip.get_model_config(model_name)
    t, v = mc["text_cfg"], mc["vision_cfg"]
    cfg = TextEncoderConfig(
        embed_dim=mc["embed_dim"], text_width=t["width"],
        text_layers=t["layers"], text_heads=t["heads"],
        context_length=t.get("context_length", 77),
        vocab_size=t.get("vocab_size", 49408),
        image_size=v.get("image_size", 224),
        patch_size=v.get("patch_size", 16), vision_width=v["width"],
        vision_layers=v["layers"], vision_head_width=v.get("head_width", 64))
    return TextEncoder(clip, cfg, trainable=trainable)
