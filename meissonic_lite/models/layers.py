"""Building blocks of the Meissonic transformer (chapter 5).

RMSNorm, sinusoidal embeddings, rotary position embeddings (1-D and the
released 2-D layout), AdaLN-Zero modulation, joint attention and the two
block types: the multi-modal (dual-stream, MMDiT; Esser et al., 2024) block
and the single-modal (single-stream, Flux "parallel") block. The math follows
the released Meissonic code (viiika/Meissonic src/transformer.py, built on
diffusers' Flux blocks) exactly; see spec sections 1.5, 1.7 and 10. For speed,
q/k/v are one fused linear (and, in single blocks, fused with the MLP input);
`official.py` splits and joins those weights for the official names.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AdaLNZero",
    "ConvNextBlock",
    "DualStreamBlock",
    "FeedForward",
    "JointAttention",
    "MLPEmbed",
    "RMSNorm",
    "SingleStreamBlock",
    "apply_rope",
    "rope_cos_sin",
    "rope_ids_1d",
    "rope_ids_2d",
    "sinusoid",
]


class RMSNorm(nn.Module):
    """RMSNorm over the last axis with a learnable gain (eps 1e-6).

    Statistics in fp32 so bf16/fp16 activations stay stable (QK-Norm is
    the paper's fix for NaN losses); the result keeps the input dtype.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def sinusoid(x: torch.Tensor, dim: int = 256,
             max_period: float = 10000.0) -> torch.Tensor:
    """(N,) scalars -> (N, dim) [cos | sin] features, computed in fp32.

    Frequencies exp(-ln(max_period) k / (dim/2)), cos half first (diffusers
    get_timestep_embedding, flip_sin_to_cos=True, shift 0). fp32 keeps
    values up to 1e4 exact, so fp16 models never overflow here.
    """
    half = dim // 2
    k = torch.arange(0, half, dtype=torch.float32, device=x.device)
    freqs = torch.exp(-math.log(max_period) * k / half)  # (half,)
    args = x.float()[:, None] * freqs[None, :]  # (N, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLPEmbed(nn.Module):
    """Linear -> SiLU -> Linear (diffusers TimestepEmbedding layout)."""

    def __init__(self, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(d_in, d_out, bias=bias)
        self.linear_2 = nn.Linear(d_out, d_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


# ----------------------------------------------------------------- RoPE
def rope_ids_2d(text_len: int, h: int, w: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Released-code ids: text (0,0,0); image (0, row, col) row-major."""
    txt = torch.zeros(text_len, 3)
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    img = torch.stack([torch.zeros(h * w), rows, cols], dim=1).float()
    return torch.cat([txt, img], 0).to(device)  # (T + h*w, 3)


def rope_ids_1d(text_len: int, h: int, w: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Paper's 1-D RoPE: one position per token over [text ; image]."""
    n = text_len + h * w
    return torch.arange(n, dtype=torch.float32, device=device)[:, None]


def rope_cos_sin(ids: torch.Tensor, axes: tuple[int, ...],
                 theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, n_axes) positions -> cos, sin of shape (S, sum(axes)), fp32.

    Per axis of width d: frequencies 1/theta^(2k/d) in float64, each
    cos/sin value repeated for the channel pair (2i, 2i+1) (Flux layout).
    """
    if ids.shape[-1] != len(axes):
        raise ValueError(f"ids have {ids.shape[-1]} axes, rope has "
                         f"{len(axes)}")
    cos, sin = [], []
    for i, d in enumerate(axes):
        k = torch.arange(0, d, 2, dtype=torch.float64, device=ids.device)
        freqs = 1.0 / theta ** (k[: d // 2] / d)  # (d/2,)
        ang = torch.outer(ids[:, i].double(), freqs)  # (S, d/2)
        cos.append(ang.cos().repeat_interleave(2, dim=1).float())
        sin.append(ang.sin().repeat_interleave(2, dim=1).float())
    return torch.cat(cos, -1), torch.cat(sin, -1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor,
               sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1) of x (B, S, H, D) by the angles.

    Pair (a, b) -> (a cos - b sin, b cos + a sin): swap the pair, then
    multiply by sin with the sign pattern (-, +).
    """
    sign = torch.tensor([-1.0, 1.0], dtype=sin.dtype, device=sin.device)
    sin = (sin.unflatten(-1, (-1, 2)) * sign).flatten(-2)  # (S, 1, D)
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (b, a)
    return torch.addcmul(x * cos, swapped, sin)


# ------------------------------------------------------------ attention
def _modulate(x: torch.Tensor, shift: torch.Tensor,
              scale: torch.Tensor) -> torch.Tensor:
    """LayerNorm (no affine, eps 1e-6) then x (1 + scale) + shift."""
    x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
    return torch.addcmul(shift, x, 1 + scale)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """(B, S, H, D) q, k, v -> RoPE -> full bidirectional SDPA -> (B,S,HD)."""
    if rope is not None:
        cos, sin = (r.to(q.dtype) for r in rope)  # (S, 1, D) tables
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    o = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return o.transpose(1, 2).flatten(2)  # (B, S, H*D)


class AdaLNZero(nn.Module):
    """Linear(SiLU(temb)) -> n chunks; zero init makes blocks identities."""

    def __init__(self, dim: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.linear = nn.Linear(dim, n * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, temb_act: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # temb_act = SiLU(temb), computed once per forward: (B, d)
        return self.linear(temb_act)[:, None].chunk(self.n, dim=-1)


class FeedForward(nn.Module):
    """Linear(d, 4d) -> GELU(tanh) -> Linear(4d, d), with biases."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class JointAttention(nn.Module):
    """Per-stream fused q/k/v, per-head QK RMSNorm, joint [text ; image]."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)  # image stream: to_q/k/v
        self.add_qkv = nn.Linear(dim, 3 * dim)  # text: add_q/k/v_proj
        self.norm_q = RMSNorm(self.head_dim)
        self.norm_k = RMSNorm(self.head_dim)
        self.norm_added_q = RMSNorm(self.head_dim)
        self.norm_added_k = RMSNorm(self.head_dim)
        self.to_out = nn.Linear(dim, dim)
        self.to_add_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, d) image, c (B, T, d) text -> their attention outputs."""
        shp = (self.heads, self.head_dim)
        qx, kx, vx = self.qkv(x).unflatten(-1, (3, *shp)).unbind(2)
        qc, kc, vc = self.add_qkv(c).unflatten(-1, (3, *shp)).unbind(2)
        q = torch.cat([self.norm_added_q(qc), self.norm_q(qx)], 1)
        k = torch.cat([self.norm_added_k(kc), self.norm_k(kx)], 1)
        v = torch.cat([vc, vx], 1)  # (B, T+N, H, D)
        o = _attend(q, k, v, rope)  # (B, T+N, d)
        t = c.shape[1]
        return self.to_out(o[:, t:]), self.to_add_out(o[:, :t])


class DualStreamBlock(nn.Module):
    """Multi-modal block: own AdaLN-Zero, attention weights and MLP per
    stream, one joint attention over [text ; image]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = AdaLNZero(dim, 6)
        self.norm1_context = AdaLNZero(dim, 6)
        self.attn = JointAttention(dim, heads)
        self.ff = FeedForward(dim, hidden)
        self.ff_context = FeedForward(dim, hidden)

    def forward(self, x: torch.Tensor, c: torch.Tensor,
                temb_act: torch.Tensor, rope
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, d) image, c (B, T, d) text, temb_act (B, d)."""
        sa, ca, ga, sm, cm, gm = self.norm1(temb_act)  # each (B, 1, d)
        sa_c, ca_c, ga_c, sm_c, cm_c, gm_c = self.norm1_context(temb_act)
        ax, ac = self.attn(_modulate(x, sa, ca), _modulate(c, sa_c, ca_c),
                           rope)
        x = torch.addcmul(x, ga, ax)
        x = torch.addcmul(x, gm, self.ff(_modulate(x, sm, cm)))
        c = torch.addcmul(c, ga_c, ac)
        c = torch.addcmul(c, gm_c, self.ff_context(_modulate(c, sm_c,
                                                             cm_c)))
        return x, c


class SingleStreamBlock(nn.Module):
    """Single-modal block on [text ; image]: attention and MLP in parallel
    from one fused input projection, one output projection."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.hidden = int(dim * mlp_ratio)
        self.norm = AdaLNZero(dim, 3)
        # fused [to_q; to_k; to_v; proj_mlp] of the official block
        self.qkv_mlp = nn.Linear(dim, 3 * dim + self.hidden)
        self.norm_q = RMSNorm(self.head_dim)
        self.norm_k = RMSNorm(self.head_dim)
        self.proj_out = nn.Linear(dim + self.hidden, dim)

    def forward(self, x: torch.Tensor, temb_act: torch.Tensor,
                rope) -> torch.Tensor:
        """x (B, S, d) -> (B, S, d)."""
        shift, scale, gate = self.norm(temb_act)
        h = self.qkv_mlp(_modulate(x, shift, scale))  # (B, S, 3d + 4d)
        d = self.heads * self.head_dim
        qkv, mlp = h.split([3 * d, self.hidden], dim=-1)
        q, k, v = qkv.unflatten(-1, (3, self.heads, self.head_dim)).unbind(2)
        o = _attend(self.norm_q(q), self.norm_k(k), v, rope)  # (B, S, d)
        y = self.proj_out(torch.cat([o, F.gelu(mlp, approximate="tanh")],
                                    dim=-1))  # attention first, then MLP
        return torch.addcmul(x, gate, y)


class ConvNextBlock(nn.Module):
    """aMUSEd's ConvNeXt block (diffusers `ConvNextBlock`, without its
    global response norm), which Meissonic dropped: depthwise 3x3 conv ->
    RMSNorm -> Linear(d, r d) -> GELU -> Linear(r d, d). It mixes each
    position with its 8 neighbours, a locality the attention has to learn
    (chapter 5's lever for a model trained on a CPU's worth of images).
    Conditioned like Meissonic's own blocks, not like aMUSEd's: AdaLN-Zero
    shifts and scales the normalised input and gates the residual, with
    the gate at zero, so the block starts as the identity. (aMUSEd scales
    the whole stream after the residual; on gate G0 that learnt slower.)"""

    def __init__(self, dim: int, mlp_ratio: float = 4.0,
                 eps: float = 1e-6) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.depthwise = nn.Conv2d(dim, dim, 3, padding=1, groups=dim,
                                   bias=False)
        self.norm = RMSNorm(dim, eps)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.ada = AdaLNZero(dim, 3)

    def forward(self, x: torch.Tensor,
                temb_act: torch.Tensor) -> torch.Tensor:
        """x (B, h, w, d) channels-last, temb_act (B, d) -> (B, h, w, d)."""
        shift, scale, gate = (t[:, None] for t in self.ada(temb_act))
        y = self.depthwise(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        y = torch.addcmul(shift, self.norm(y), 1 + scale)
        y = self.fc2(F.gelu(self.fc1(y), approximate="tanh"))
        return torch.addcmul(x, gate, y)
