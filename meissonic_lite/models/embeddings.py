"""The layers around the Meissonic transformer's blocks (chapter 5): the
code embedding, the k x k feature compression (paper: 2x2) and its
inverse, the masked-token head, and the embedder of the mask-rate level
and pooled text.

Names follow the released code (viiika/Meissonic src/transformer.py:
`UVit2DConvEmbed`, `Simple_UVitBlock`, `ConvMlmLayer`); its 1x1 convs are
linears here, which `official.py` maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .layers import MLPEmbed, RMSNorm, sinusoid

__all__ = ["Downsample", "MlmHead", "TimeTextEmbed", "TokenEmbed",
           "Upsample"]


class TokenEmbed(nn.Module):
    """Embedding (codes + mask) -> RMSNorm -> 1x1 conv (no bias)."""

    def __init__(self, vocab: int, dim: int, eps: float) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(vocab, dim)
        self.layer_norm = RMSNorm(dim, eps)
        self.conv = nn.Linear(dim, dim, bias=False)  # a 1x1 conv

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(self.layer_norm(self.embeddings(ids)))


PATCHES = "b (h i) (w j) c -> b h w (i j c)"     # k x k positions -> 1
UNPATCHES = "b h w (i j c) -> b (h i) (w j) c"   # 1 position -> k x k


class _NormThenKxK(nn.Module):
    """RMSNorm over channels, then a k x k stride-k `conv_type` (no bias):
    the shared parts of the feature compression's two ends (paper: k=2)."""

    def __init__(self, dim: int, eps: float, conv_type: type,
                 k: int = 2) -> None:
        super().__init__()
        self.k = k
        self.norm = RMSNorm(dim, eps)
        self.conv = conv_type(dim, dim, k, stride=k, bias=False)


class Downsample(_NormThenKxK):
    """RMSNorm, then a k x k stride-k conv: k x k positions -> 1."""

    def __init__(self, dim: int, eps: float, k: int = 2) -> None:
        super().__init__(dim, eps, nn.Conv2d, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B, H, W, C) channels-last -> (B, H/k, W/k, C): a linear map on
        # each k x k patch, weight (out, in, kh, kw) -> (out, kh*kw*in)
        patches = rearrange(self.norm(x), PATCHES, i=self.k, j=self.k)
        wt = self.conv.weight.permute(0, 2, 3, 1).flatten(1)
        return F.linear(patches, wt)


class Upsample(_NormThenKxK):
    """RMSNorm, then a k x k stride-k transposed conv: 1 position -> k x k."""

    def __init__(self, dim: int, eps: float, k: int = 2) -> None:
        super().__init__(dim, eps, nn.ConvTranspose2d, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B, h, w, C) -> (B, kh, kw, C): each position emits a k x k
        # patch, weight (in, out, kh, kw) -> (kh*kw*out, in)
        wt = self.conv.weight.permute(2, 3, 1, 0).flatten(0, 2)
        patches = F.linear(self.norm(x), wt)
        return rearrange(patches, UNPATCHES, i=self.k, j=self.k)


class MlmHead(nn.Module):
    """1x1 conv -> RMSNorm -> 1x1 conv to codebook logits (no biases)."""

    def __init__(self, dim: int, codebook: int, eps: float) -> None:
        super().__init__()
        self.conv1 = nn.Linear(dim, dim, bias=False)
        self.layer_norm = RMSNorm(dim, eps)
        self.conv2 = nn.Linear(dim, codebook, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.layer_norm(self.conv1(x)))


class TimeTextEmbed(nn.Module):
    """temb = MLP_t(sin(level)) + MLP_p(c): diffusers'
    CombinedTimestepTextProjEmbeddings as Meissonic uses it."""

    def __init__(self, level_dim: int, dim: int) -> None:
        super().__init__()
        self.level_dim = level_dim
        self.timestep_embedder = MLPEmbed(level_dim, dim)
        self.text_embedder = MLPEmbed(dim, dim)

    def forward(self, level: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = sinusoid(level, self.level_dim).to(c.dtype)  # (B, level_dim)
        return self.timestep_embedder(t) + self.text_embedder(c)
