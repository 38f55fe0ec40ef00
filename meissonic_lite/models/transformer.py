"""The Meissonic transformer: tokens + text + conditions -> code logits
(chapter 5).

A masked generative transformer in the MaskGIT (Chang et al., 2022) and
MUSE (Chang et al., 2023) family, with Meissonic's (Bai et al., 2025)
backbone: multi-modal (dual-stream) blocks followed by single-modal blocks
in a 1:2 ratio, QK-Norm, RoPE, AdaLN-Zero driven by pooled text,
micro-conditions and the mask-rate level, and optional 2x2 feature
compression around the transformer. Parameter names follow the released
code (viiika/Meissonic src/transformer.py) wherever the math is the same;
`official.py` maps the rest. The model knows nothing about training or
sampling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import (
    Downsample,
    MlmHead,
    TimeTextEmbed,
    TokenEmbed,
    Upsample,
)
from .layers import (
    AdaLNZero,
    ConvNextBlock,
    DualStreamBlock,
    MLPEmbed,
    RMSNorm,
    SingleStreamBlock,
    rope_cos_sin,
    rope_ids_1d,
    rope_ids_2d,
    sinusoid,
)
from .model_files import corrupt, read_model_file, to_float32, write_model_file

__all__ = ["MeissonicTransformer", "TransformerConfig"]

RopeMode = Literal["2d", "1d", "none", "learned"]
WEIGHTS = (Path(__file__).parent.parent / "weights"
           / "transformer.safetensors")
REBUILD = "meissonic-lite train --stage all --ship"


@dataclass
class TransformerConfig:
    """All sizes of the transformer; presets via `TransformerConfig.preset`."""

    codebook_size: int = 512  # output logits (VQ codes)
    vocab_size: int = 513  # input rows; mask id = vocab_size - 1
    num_heads: int = 4
    head_dim: int = 64  # width d = num_heads * head_dim
    num_dual: int = 2  # multi-modal (dual-stream) blocks
    num_single: int = 4  # single-modal blocks (paper ratio 1:2)
    mlp_ratio: float = 4.0
    text_dim: int = 128  # width of the text encoder's hidden states
    pooled_dim: int = 128  # width of the pooled text embedding
    num_micro: int = 5  # [orig_w, orig_h, crop_top, crop_left, score]
    micro_dim: int = 256  # sinusoid width per micro-condition
    level_dim: int = 256  # sinusoid width of the mask-rate level
    compress: bool = False  # k x k stride-k conv before, conv-T after
    compress_factor: int = 2  # positions merged per side when compress
    #                           (paper: 2; 4 lets 32x32 tokens run on 8x8)
    conv_blocks: int = 0  # aMUSEd's ConvNeXt blocks per side (not in
    #                       Meissonic): local mixing before/after attention
    rope: RopeMode = "2d"  # released code: 2d; paper text: 1d
    rope_axes: tuple[int, ...] = (8, 28, 28)  # 2d: (unused, row, col)
    rope_theta: float = 10000.0
    max_grid: tuple[int, int] = (32, 32)  # learned pos-emb: transformer grid
    eps: float = 1e-6
    extra: dict = field(default_factory=dict)  # free-form notes

    @property
    def dim(self) -> int:
        """Transformer width (inner_dim)."""
        return self.num_heads * self.head_dim

    @property
    def compression(self) -> int:
        """Token positions per transformer position, per side (1: none)."""
        return self.compress_factor if self.compress else 1

    @property
    def mask_id(self) -> int:
        """Input id of [MASK]: the last vocabulary row, never predicted."""
        return self.vocab_size - 1

    def __post_init__(self) -> None:
        self.rope_axes = tuple(self.rope_axes)
        self.max_grid = tuple(self.max_grid)
        if self.vocab_size <= self.codebook_size:
            raise ValueError("vocab_size must exceed codebook_size so the "
                             "mask id (vocab_size - 1) is not a code")
        if self.compress_factor < 2:
            raise ValueError(f"compress_factor must be >= 2, got "
                             f"{self.compress_factor}")
        if self.rope not in ("2d", "1d", "none", "learned"):
            raise ValueError(f"unknown rope mode {self.rope!r}")
        if self.rope == "2d" and (sum(self.rope_axes) != self.head_dim
                                  or len(self.rope_axes) != 3
                                  or any(a % 2 for a in self.rope_axes)):
            raise ValueError("2d rope_axes must be 3 even widths summing "
                             f"to head_dim={self.head_dim}")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even for RoPE")
        if self.conv_blocks < 0:
            raise ValueError(f"conv_blocks must be >= 0, got "
                             f"{self.conv_blocks}")

    @classmethod
    def preset(cls, name: str, **overrides) -> TransformerConfig:
        """`tiny` (tests), `lite` (the book's model) or `paper` (1.007 B)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; "
                             f"choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, TransformerConfig] = {
    # unit tests: < 1 M parameters
    "tiny": TransformerConfig(
        codebook_size=64, vocab_size=65, num_heads=2, head_dim=32,
        num_dual=1, num_single=2, text_dim=32, pooled_dim=32,
        rope_axes=(4, 14, 14)),
    # the book's model (sized for >= 30 train images/s on 2 CPU cores)
    "lite": TransformerConfig(
        codebook_size=512, vocab_size=513, num_heads=3, head_dim=64,
        num_dual=2, num_single=4, text_dim=128, pooled_dim=128,
        rope_axes=(8, 28, 28)),
    # the released Meissonic (spec 1.1)
    "paper": TransformerConfig(
        codebook_size=8192, vocab_size=8256, num_heads=8, head_dim=128,
        num_dual=14, num_single=28, text_dim=1024, pooled_dim=1024,
        compress=True, rope_axes=(16, 56, 56), max_grid=(64, 64)),
}


class MeissonicTransformer(nn.Module):
    """Meissonic's multi-modal transformer for masked image modelling."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d, eps = cfg.dim, cfg.eps
        self.embed = TokenEmbed(cfg.vocab_size, d, eps)
        k = cfg.compress_factor
        self.down_block = Downsample(d, eps, k) if cfg.compress else None
        self.down_convs = nn.ModuleList(
            ConvNextBlock(d, cfg.mlp_ratio, eps)
            for _ in range(cfg.conv_blocks))
        self.project_to_hidden_norm = RMSNorm(d, eps)
        self.project_to_hidden = nn.Linear(d, d, bias=False)
        self.context_embedder = nn.Linear(cfg.text_dim, d)
        self.encoder_proj_layer_norm = RMSNorm(d, eps)
        micro_w = cfg.num_micro * cfg.micro_dim
        self.cond_embed = MLPEmbed(cfg.pooled_dim + micro_w, d, bias=False)
        self.time_text_embed = TimeTextEmbed(cfg.level_dim, d)
        self.transformer_blocks = nn.ModuleList(
            DualStreamBlock(d, cfg.num_heads, cfg.mlp_ratio)
            for _ in range(cfg.num_dual))
        self.single_transformer_blocks = nn.ModuleList(
            SingleStreamBlock(d, cfg.num_heads, cfg.mlp_ratio)
            for _ in range(cfg.num_single))
        self.project_from_hidden_norm = RMSNorm(d, eps)
        self.project_from_hidden = nn.Linear(d, d, bias=False)
        self.up_convs = nn.ModuleList(
            ConvNextBlock(d, cfg.mlp_ratio, eps)
            for _ in range(cfg.conv_blocks))
        self.up_block = Upsample(d, eps, k) if cfg.compress else None
        self.mlm_layer = MlmHead(d, cfg.codebook_size, eps)
        self.pos_embed = None
        if cfg.rope == "learned":  # absolute, for the ablation chapter
            self.pos_embed = nn.Parameter(torch.zeros(*cfg.max_grid, d))
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier linears, zero biases, N(0, 0.02) tables; AdaLN back to 0."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, AdaLNZero):  # AdaLN-Zero: blocks start as id
                nn.init.zeros_(m.linear.weight)
                nn.init.zeros_(m.linear.bias)
        nn.init.normal_(self.embed.embeddings.weight, std=0.02)
        if self.pos_embed is not None:
            nn.init.normal_(self.pos_embed, std=0.02)

    # --------------------------------------------------------- checks
    def _check(self, tokens, text, pooled, micro, level) -> torch.Tensor:
        cfg = self.config
        if tokens.dim() != 3 or tokens.dtype != torch.long:
            raise ValueError("tokens must be (B, H, W) int64, got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        b, h, w = tokens.shape
        if tokens.numel() and (int(tokens.min()) < 0
                               or int(tokens.max()) >= cfg.vocab_size):
            raise ValueError(f"token ids must lie in [0, {cfg.vocab_size})"
                             f" (mask id {cfg.mask_id}); got "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        want = {"text_states": (text, (b, "T", cfg.text_dim)),
                "pooled": (pooled, (b, cfg.pooled_dim)),
                "micro_conds": (micro, (b, cfg.num_micro))}
        for name, (x, shape) in want.items():
            ok = x.dim() == len(shape) and all(
                s == "T" or x.shape[i] == s for i, s in enumerate(shape))
            if not ok:
                raise ValueError(f"{name} must have shape {shape}, got "
                                 f"{tuple(x.shape)}")
        level = torch.as_tensor(level, device=tokens.device)
        if level.dim() == 0:
            level = level.expand(b)
        if level.shape != (b,):
            raise ValueError(f"level must have shape ({b},), got "
                             f"{tuple(level.shape)}")
        if level.numel() and (float(level.min()) < 0
                              or float(level.max()) > 1000):
            raise ValueError("level must lie in [0, 1000] "
                             "(masking.mask_rate_level: round(1000 r))")
        k = cfg.compression
        if h % k or w % k:
            raise ValueError(f"feature compression needs a token grid "
                             f"divisible by {k}, got {h}x{w}")
        return level

    def rope_tables(self, text_len: int, h: int, w: int, device, dtype):
        """cos, sin (S, 1, D) for [text ; image] on the transformer grid."""
        cfg = self.config
        if cfg.rope == "2d":
            ids, axes = rope_ids_2d(text_len, h, w, device), cfg.rope_axes
        elif cfg.rope == "1d":
            ids, axes = rope_ids_1d(text_len, h, w, device), (cfg.head_dim,)
        else:
            return None
        cos, sin = rope_cos_sin(ids, axes, cfg.rope_theta)  # (S, D) fp32
        return cos[:, None].to(dtype), sin[:, None].to(dtype)

    def conditioning(self, pooled, micro, level) -> torch.Tensor:
        """temb (B, d) = MLP_t(sin(level)) + MLP_p(cond([pooled; sin(mc)]))."""
        b = pooled.shape[0]
        mc = sinusoid(micro.reshape(-1), self.config.micro_dim)
        c = torch.cat([pooled.float(), mc.reshape(b, -1)], dim=1)
        c = c.to(self.cond_embed.linear_1.weight.dtype)  # (B, P + 5*256)
        return self.time_text_embed(level, self.cond_embed(c))

    # -------------------------------------------------------- forward
    def forward(
        self,
        tokens: torch.Tensor,
        text_states: torch.Tensor,
        pooled: torch.Tensor,
        micro_conds: torch.Tensor,
        level: torch.Tensor | float,
    ) -> torch.Tensor:
        """(B,H,W) ids, (B,T,Dt) text, (B,Dp) pooled, (B,5) micro-conds,
        (B,) mask-rate level in [0, 1000] -> logits (B, codebook, H, W)."""
        level = self._check(tokens, text_states, pooled, micro_conds, level)
        b = tokens.shape[0]
        temb = self.conditioning(pooled, micro_conds, level)  # (B, d)
        temb_act = F.silu(temb)
        x = self.embed(tokens)  # (B, H, W, d)
        if self.down_block is not None:
            x = self.down_block(x)  # (B, H/k, W/k, d)
        for blk in self.down_convs:  # empty unless conv_blocks > 0
            x = blk(x, temb_act)
        h, w = x.shape[1:3]
        x = self.project_to_hidden(self.project_to_hidden_norm(x.flatten(1,
                                                                     2)))
        if self.pos_embed is not None:  # (B, h*w, d)
            mh, mw = self.config.max_grid
            if h > mh or w > mw:
                raise ValueError(f"grid {h}x{w} exceeds max_grid {mh}x{mw}")
            x = x + self.pos_embed[:h, :w].reshape(h * w, -1)
        text_states = text_states.to(self.context_embedder.weight.dtype)
        c = self.encoder_proj_layer_norm(self.context_embedder(text_states))
        t = c.shape[1]
        rope = self.rope_tables(t, h, w, x.device, torch.float32)
        for blk in self.transformer_blocks:
            x, c = blk(x, c, temb_act, rope)  # (B, N, d), (B, T, d)
        if len(self.single_transformer_blocks):
            s = torch.cat([c, x], dim=1)  # (B, T + N, d)
            for blk in self.single_transformer_blocks:
                s = blk(s, temb_act, rope)
            x = s[:, t:]  # drop text positions
        x = self.project_from_hidden(self.project_from_hidden_norm(x))
        x = x.reshape(b, h, w, -1)  # (B, h, w, d)
        for blk in self.up_convs:
            x = blk(x, temb_act)
        if self.up_block is not None:
            x = self.up_block(x)  # (B, H, W, d)
        logits = self.mlm_layer(x)  # (B, H, W, K)
        return logits.permute(0, 3, 1, 2)  # (B, K, H, W)

    # -- one file per model: weights + config (model_files) -------------
    def save_pretrained(self, path: str | Path,
                        dtype: torch.dtype = torch.float16) -> None:
        """Write weights (cast to `dtype`) and config, atomically."""
        write_model_file(path, self.state_dict(), asdict(self.config),
                         dtype)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None,
                        device: str | torch.device = "cpu"
                        ) -> MeissonicTransformer:
        """Load the shipped transformer (or `path`) in eval mode, fp32;
        the config in the file rebuilds the model it was trained as."""
        path = Path(path) if path is not None else WEIGHTS
        cfg, state = read_model_file(path, "transformer", REBUILD)
        try:
            model = cls(TransformerConfig(**cfg))
            model.load_state_dict(to_float32(state), strict=True)
        except Exception as e:  # a file of another shape or model
            raise corrupt(path, "transformer", REBUILD, e) from e
        return model.to(device).eval()

    def num_params(self) -> int:
        """Total parameter count (works on the meta device)."""
        return sum(p.numel() for p in self.parameters())
