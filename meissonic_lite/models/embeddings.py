"""The layers around the Meissonic transformer's blocks (chapter 5): the
code embedding, the 2x2 feature compression and its inverse, the masked-
token head, and the embedder of the mask-rate level and pooled text.

Names follow the released code (viiika/Meissonic src/transformer.py:
`UVit2DConvEmbed`, `Simple_UVitBlock`, `ConvMlmLayer`); its 1x1 convs are
linears here, which `official.py` maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class _NormThen2x2(nn.Module):
    """RMSNorm over channels, then a 2x2 stride-2 `conv_type` (no bias):
    the shared parts of the feature compression's two ends."""

    def __init__(self, dim: int, eps: float, conv_type: type) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, eps)
        self.conv = conv_type(dim, dim, 2, stride=2, bias=False)


class Downsample(_NormThen2x2):
    """RMSNorm, then a 2x2 stride-2 conv: 2x2 positions -> 1."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__(dim, eps, nn.Conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B, H, W, C) channels-last -> (B, H/2, W/2, C); as a linear map
        # on 2x2 patches, weight (out, in, kh, kw) -> (out, kh*kw*in)
        b, h, w, c = x.shape
        x = self.norm(x).reshape(b, h // 2, 2, w // 2, 2, c)
        x = x.transpose(2, 3).reshape(b, h // 2, w // 2, 4 * c)
        wt = self.conv.weight.permute(0, 2, 3, 1).reshape(c, 4 * c)
        return F.linear(x, wt)


class Upsample(_NormThen2x2):
    """RMSNorm, then a 2x2 stride-2 transposed conv: 1 position -> 2x2."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__(dim, eps, nn.ConvTranspose2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B, h, w, C) -> (B, 2h, 2w, C): each token emits a 2x2 patch
        b, h, w, c = x.shape
        wt = self.conv.weight.permute(2, 3, 1, 0).reshape(4 * c, c)
        y = F.linear(self.norm(x), wt).reshape(b, h, w, 2, 2, c)
        return y.transpose(2, 3).reshape(b, 2 * h, 2 * w, c)


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
