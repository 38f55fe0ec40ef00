"""Building blocks of the VQ tokenizer: conv encoder/decoder, quantizer
(chapter 2).

The layout follows the VQGAN family Meissonic uses (aMUSEd / open-muse,
spec section 5): residual conv blocks with GroupNorm and SiLU, one
stride-2 conv per halving, nearest-upsample + conv on the way back, and no
attention, so the whole model is fully convolutional. The quantizer is the
VQ-VAE one (van den Oord et al. 2017) with EMA codebook updates, k-means
initialisation and dead-code restarts (Razavi et al. 2019; Dhariwal et al.
2020, "Jukebox") to keep every code in use.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c, eps=1e-6)


class ResBlock(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x)))))), channel count kept."""

    def __init__(self, c: int):
        super().__init__()
        self.n1, self.c1 = _norm(c), nn.Conv2d(c, c, 3, padding=1)
        self.n2, self.c2 = _norm(c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        return x + self.c2(F.silu(self.n2(h)))


class Encoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, code_dim, H/f, W/f) continuous."""

    def __init__(self, channels: tuple[int, ...], code_dim: int):
        super().__init__()
        self.conv_in = nn.Conv2d(3, channels[0], 3, padding=1)
        layers: list[nn.Module] = []
        for c_in, c_out in pairwise(channels):
            layers += [ResBlock(c_in),
                       nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)]
        c = channels[-1]
        layers += [ResBlock(c), ResBlock(c), _norm(c), nn.SiLU(),
                   nn.Conv2d(c, code_dim, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.conv_in(x))


class PatchEncoder(nn.Module):
    """Patch-local encoder: each f x f pixel patch -> one code vector, on
    its own (B, 3, H, W) -> (B, code_dim, H/f, W/f).

    A f x f stride-f conv, then per-position residual MLPs (1x1 convs, no
    GroupNorm), so a token depends on its own pixels only: a flat patch
    of one colour gets one code wherever it sits, and an edge gets the same
    code in every image. The conv encoder's 3x3 receptive field and
    image-wide GroupNorm statistics let identical patches take dozens of
    codes (`vq_metrics.flat_patch_purity`; chapter 6), which the transformer
    must then guess.
    """

    def __init__(self, channels: tuple[int, ...], code_dim: int,
                 factor: int):
        super().__init__()
        c = channels[-1]
        self.patch = nn.Conv2d(3, c, factor, stride=factor)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Conv2d(c, 2 * c, 1), nn.SiLU(),
                          nn.Conv2d(2 * c, c, 1)) for _ in range(2))
        self.out = nn.Sequential(nn.SiLU(), nn.Conv2d(c, code_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(x)
        for blk in self.blocks:
            h = h + blk(h)
        return self.out(h)


class Decoder(nn.Module):
    """(B, code_dim, h, w) -> (B, 3, h*f, w*f), roughly in [-1, 1]."""

    def __init__(self, channels: tuple[int, ...], code_dim: int):
        super().__init__()
        c = channels[-1]
        layers: list[nn.Module] = [nn.Conv2d(code_dim, c, 3, padding=1),
                                   ResBlock(c), ResBlock(c)]
        for c_in, c_out in zip(channels[:0:-1], channels[-2::-1]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c_in, c_out, 3, padding=1),
                       ResBlock(c_out)]
        layers += [_norm(channels[0]), nn.SiLU(),
                   nn.Conv2d(channels[0], 3, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def _kmeans(x: torch.Tensor, k: int, iters: int,
            gen: torch.Generator | None) -> torch.Tensor:
    """Lloyd's k-means on rows of x (N, D) -> centres (k, D)."""
    idx = torch.randint(0, x.shape[0], (k,), generator=gen)
    c = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)                  # (N,)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        cnt = torch.bincount(assign, minlength=k).float()
        live = cnt > 0
        c[live] = sums[live] / cnt[live, None]
    return c


class VectorQuantizer(nn.Module):
    """Nearest-code lookup with straight-through gradients and EMA codes.

    Training updates the codebook as running means of the encoder vectors
    assigned to each code (no codebook gradient), restarts codes whose
    running count falls below `dead_threshold` at random encoder vectors,
    and initialises the codebook with k-means on the first batch.
    """

    def __init__(self, num_codes: int, code_dim: int, decay: float = 0.99,
                 commitment: float = 0.25, dead_threshold: float = 0.03):
        super().__init__()
        self.num_codes, self.code_dim = num_codes, code_dim
        self.decay, self.commitment = decay, commitment
        self.dead_threshold = dead_threshold
        self.register_buffer("codebook", torch.randn(num_codes, code_dim))
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialised", torch.tensor(False))

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) float -> (N,) nearest code index (squared L2, fp32)."""
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            cb = self.codebook.float()
            d = (z.pow(2).sum(1, keepdim=True) - 2 * z @ cb.t()
                 + cb.pow(2).sum(1)[None])                    # (N, K)
            return d.argmin(1)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, D, h, w) code vectors."""
        return self.codebook.float()[idx].permute(0, 3, 1, 2)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor,
                gen: torch.Generator | None) -> None:
        if not bool(self.initialised):
            cb = _kmeans(flat, self.num_codes, 10, gen)
            self.codebook.copy_(cb)
            self.ema_sum.copy_(cb)
            self.ema_count.fill_(1.0)
            self.initialised.fill_(True)
            return
        onehot_cnt = torch.bincount(idx, minlength=self.num_codes).float()
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)
        self.ema_count.mul_(self.decay).add_(onehot_cnt, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()                              # Laplace
        cnt = (self.ema_count + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.codebook.copy_(self.ema_sum / cnt[:, None])
        dead = self.ema_count < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(0, flat.shape[0], (n_dead,), generator=gen)
            self.codebook[dead] = flat[pick]
            self.ema_sum[dead] = flat[pick]
            self.ema_count[dead] = 1.0

    def forward(self, z: torch.Tensor, gen: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, D, h, w) -> (z_q straight-through, idx (B, h, w), loss)."""
        B, D, h, w = z.shape
        z = z.float()
        flat = z.permute(0, 2, 3, 1).reshape(-1, D)          # (B*h*w, D)
        if self.training and not bool(self.initialised):
            self._update(flat.detach(), flat.new_zeros(0).long(), gen)
        idx = self.lookup(flat.detach())                      # (N,)
        zq = self.codebook[idx].view(B, h, w, D).permute(0, 3, 1, 2)
        if self.training:
            zq = zq.clone()
            self._update(flat.detach(), idx, gen)
        loss = self.commitment * F.mse_loss(z, zq.detach())
        zq = z + (zq - z).detach()                            # straight-thru
        return zq, idx.view(B, h, w), loss
