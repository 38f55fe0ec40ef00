"""The text half of open_clip's CLIP in plain torch, for fast start-up
(chapter 3; issue 26).

Generating an image needs only CLIP's text tower and its BPE tokenizer.
`import open_clip` also imports torchvision, timm and, through them,
torch._dynamo: about 2 s of a 2-core machine's start-up, more than the
sampling itself. So the pipeline loads the shipped CLIP's text weights
into `TextTower`, which has open_clip's parameter names and runs the same
torch operations (`tests/test_text_tower.py` finds its outputs
bit-identical to `open_clip.CLIP`'s), and reads prompts with open_clip's
own tokenizer file, loaded without its package's `__init__`. Training and
image scores (chapter 3's CLIP-score, CLIP-I, CLIP-T) still use the whole
`open_clip.CLIP`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

__all__ = ["TextBlock", "TextTower", "load_tokenizer"]


class TextBlock(nn.Module):
    """Pre-LN residual block, as open_clip's ResidualAttentionBlock with
    its defaults (GELU MLP of 4x width, no layer scale)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False,
                          attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class TextTower(nn.Module):
    """CLIP's text transformer with open_clip's attribute and parameter
    names, so `TextEncoder.text_forward` and the shipped files need no
    change. It has no image tower: `visual` is None."""

    visual = None

    def __init__(self, cfg) -> None:
        super().__init__()
        d, n = cfg.text_width, cfg.context_length
        self.token_embedding = nn.Embedding(cfg.vocab_size, d)
        self.positional_embedding = nn.Parameter(torch.zeros(n, d))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            TextBlock(d, cfg.text_heads) for _ in range(cfg.text_layers))
        self.ln_final = nn.LayerNorm(d)
        self.text_projection = nn.Parameter(torch.zeros(d, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))
        causal = torch.full((n, n), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", causal, persistent=False)


def load_tokenizer(context_length: int):
    """open_clip's SimpleTokenizer (its bundled BPE vocabulary), read from
    open_clip's `tokenizer.py` without running the package's `__init__`
    (which imports torchvision); falls back to `import open_clip` if that
    file ever stops standing alone."""
    name = "meissonic_lite._open_clip_tokenizer"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.find_spec("open_clip")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("open_clip is not installed: pip install "
                              "open_clip_torch (see environment.yml)")
        folder = next(iter(spec.submodule_search_locations))
        path = Path(folder, "tokenizer.py")
        file_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(file_spec)
        try:
            file_spec.loader.exec_module(module)
        except ImportError:  # the file now imports its package: use it
            import open_clip  # slow path, see the docstring
            module = open_clip.tokenizer
        sys.modules[name] = module
    return module.SimpleTokenizer(context_length=context_length)
