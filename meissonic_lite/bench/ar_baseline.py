"""An autoregressive baseline of equal size, for the decoding-steps claim
(chapter 7).

Masked generative transformers decode a token grid in a few parallel
steps; an autoregressive (AR) model such as LlamaGen or Parti needs one
forward pass per token, even with a KV cache (the paper's "99% fewer
decoding steps"). To measure that rather than quote it, this is a plain
pre-norm decoder-only transformer with the same width, heads and total
depth as a Meissonic config: [text states ; BOS ; image tokens in raster
order], learned positions, causal attention, and a preallocated KV cache
so each new token costs one single-position forward. Random weights are
enough for timing; `bench.generate.bench_ar_vs_masked` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..sampling.decode import cfg_mix


@dataclass
class ARConfig:
    """Sizes of the causal baseline."""

    codebook_size: int = 512
    dim: int = 192
    num_heads: int = 3
    num_layers: int = 6
    mlp_ratio: float = 4.0
    text_dim: int = 128
    max_text: int = 77
    max_tokens: int = 1024

    @classmethod
    def like(cls, cfg, max_tokens: int, max_text: int = 77) -> ARConfig:
        """Same codebook, width, heads and total depth as a
        `TransformerConfig` (dual + single blocks)."""
        return cls(cfg.codebook_size, cfg.dim, cfg.num_heads,
                   cfg.num_dual + cfg.num_single, cfg.mlp_ratio,
                   cfg.text_dim, max_text, max_tokens)


class KVCache:
    """Preallocated keys and values (layers, B, heads, max_len, head_dim)."""

    def __init__(self, cfg: ARConfig, batch: int, device, dtype) -> None:
        hd = cfg.dim // cfg.num_heads
        n = cfg.max_text + 1 + cfg.max_tokens
        shape = (cfg.num_layers, batch, cfg.num_heads, n, hd)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.len = 0                      # positions filled so far


class Block(nn.Module):
    """Pre-norm causal self-attention + GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden),
                                 nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int,
                pos0: int) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1) \
            .permute(2, 0, 3, 1, 4)                  # each (B, H, n, hd)
        if cache is not None:                        # write, then read all
            cache.k[layer, :, :, pos0:pos0 + n] = k
            cache.v[layer, :, :, pos0:pos0 + n] = v
            k = cache.k[layer, :, :, :pos0 + n]
            v = cache.v[layer, :, :, :pos0 + n]
        mask = None                                  # one query sees all
        if n > 1:
            qpos = torch.arange(pos0, pos0 + n, device=x.device)
            mask = torch.arange(k.shape[2], device=x.device) <= qpos[:, None]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(o.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class CausalImageTransformer(nn.Module):
    """Decoder-only transformer over [text ; BOS ; tokens]; one forward
    call is one decoding pass (forward hooks count them)."""

    def __init__(self, cfg: ARConfig) -> None:
        super().__init__()
        self.config = cfg
        d = cfg.dim
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.bos = nn.Parameter(torch.randn(d) * 0.02)
        self.tok = nn.Embedding(cfg.codebook_size, d)
        self.pos = nn.Parameter(
            torch.randn(cfg.max_text + 1 + cfg.max_tokens, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, cfg.num_heads, cfg.mlp_ratio)
                                    for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.codebook_size, bias=False)

    def prefix(self, text_states: torch.Tensor) -> torch.Tensor:
        """(B, T, text_dim) -> embedded [text ; BOS] (B, T + 1, d)."""
        if text_states.shape[1] > self.config.max_text:
            raise ValueError(f"text longer than {self.config.max_text}")
        t = self.text_proj(text_states)
        return torch.cat([t, self.bos.expand(t.shape[0], 1, -1)], 1)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                pos0: int = 0) -> torch.Tensor:
        """Embeddings (B, n, d) at positions pos0.. -> logits (B, n, K)."""
        x = x + self.pos[pos0:pos0 + x.shape[1]]
        for i, blk in enumerate(self.blocks):
            x = blk(x, cache, i, pos0)
        if cache is not None:
            cache.len = pos0 + x.shape[1]
        return self.head(self.norm(x))

    def full_logits(self, text_states: torch.Tensor, tokens: torch.Tensor
                    ) -> torch.Tensor:
        """No cache: logits predicting tokens[:, 0..n] (B, n + 1, K)."""
        x = torch.cat([self.prefix(text_states), self.tok(tokens)], 1)
        return self(x)[:, text_states.shape[1]:]

    @torch.no_grad()
    def generate(self, text_states: torch.Tensor, n_tokens: int,
                 uncond_states: torch.Tensor | None = None,
                 guidance_scale: float = 1.0,
                 generator: torch.Generator | None = None,
                 return_logits: bool = False):
        """Raster-order sampling with a KV cache: one prefill pass, then
        one single-token pass per remaining token. CFG as in the masked
        sampler when `uncond_states` is given. Returns tokens (B, n)."""
        if not 1 <= n_tokens <= self.config.max_tokens:
            raise ValueError(f"n_tokens must be in [1, "
                             f"{self.config.max_tokens}]")
        b = text_states.shape[0]
        cfg = uncond_states is not None and guidance_scale != 1.0
        states = torch.cat([uncond_states.expand_as(text_states),
                            text_states]) if cfg else text_states
        cache = KVCache(self.config, states.shape[0], states.device,
                        self.pos.dtype)
        logits = self(self.prefix(states), cache)[:, -1]       # prefill
        out, seen = [], []
        for i in range(n_tokens):
            if cfg:
                logits = cfg_mix(logits.float(), guidance_scale)
            seen.append(logits)
            p = F.softmax(logits.float(), -1).cpu()
            tok = torch.multinomial(p, 1, generator=generator)  # (B, 1)
            tok = tok.to(states.device)
            out.append(tok)
            if i + 1 < n_tokens:
                nxt = torch.cat([tok, tok]) if cfg else tok
                logits = self(self.tok(nxt), cache, cache.len)[:, -1]
        tokens = torch.cat(out, 1)
        assert tokens.shape == (b, n_tokens)
        return (tokens, torch.stack(seen, 1)) if return_logits else tokens
