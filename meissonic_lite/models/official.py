"""Key map between the released Meissonic transformer and ours (chapter 5).

The released model (viiika/Meissonic src/transformer.py, `Transformer2DModel`
from diffusers' Flux blocks; Bai et al., 2025) keeps q, k, v and the single
block's MLP input as separate linears and the 1x1 convs as 4-D conv weights.
Ours fuses q/k/v (and, in single blocks, q/k/v + MLP input) into one matmul
and stores 1x1 convs as linears. The math is identical, so a strict
rename/split/concatenate maps every tensor both ways: no missing or
unexpected keys. With this a reader can run the real checkpoint through the
book's code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from .transformer import MeissonicTransformer, TransformerConfig

__all__ = [
    "OFFICIAL_BREAKDOWN",
    "OFFICIAL_PARAMS",
    "from_official_config",
    "from_official_state_dict",
    "load_official_state_dict",
    "official_breakdown",
    "to_official_state_dict",
]

OFFICIAL_PARAMS = 1_006_946_304  # measured on the released config (spec 1.1)

# spec 1.1, per-module parameter counts of the released model
OFFICIAL_BREAKDOWN: dict[str, int] = {
    "dual-stream blocks": 528_919_552,
    "single-stream blocks": 440_724_480,
    "token embedding": 9_503_744,
    "MLM head": 9_438_208,
    "down block": 4_195_328,
    "up block": 4_195_328,
    "time_text_embed": 3_411_968,
    "cond_embed": 3_407_872,
    "context_embedder (+norm)": 1_049_600 + 1_024,
    "project_to/from_hidden (+norms)": 2 * (1_048_576 + 1_024),
}

# (our name regex, official names it joins, kind)
_FUSED = [
    (r"transformer_blocks\.(\d+)\.attn\.qkv\.(weight|bias)",
     ["attn.to_q", "attn.to_k", "attn.to_v"]),
    (r"transformer_blocks\.(\d+)\.attn\.add_qkv\.(weight|bias)",
     ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"]),
    (r"single_transformer_blocks\.(\d+)\.qkv_mlp\.(weight|bias)",
     ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"]),
]
_RENAME = [  # (our suffix regex, official replacement)
    (r"^(transformer_blocks\.\d+)\.attn\.to_out\.", r"\1.attn.to_out.0."),
    (r"^(transformer_blocks\.\d+)\.(ff|ff_context)\.fc1\.",
     r"\1.\2.net.0.proj."),
    (r"^(transformer_blocks\.\d+)\.(ff|ff_context)\.fc2\.", r"\1.\2.net.2."),
    (r"^(single_transformer_blocks\.\d+)\.(norm_q|norm_k)\.",
     r"\1.attn.\2."),
    (r"^down_block\.", "down_block.downsample."),
    (r"^up_block\.", "up_block.upsample."),
]
_CONV1X1 = ("embed.conv.weight", "mlm_layer.conv1.weight",
            "mlm_layer.conv2.weight")


def from_official_config(cfg: Mapping[str, Any], **overrides
                         ) -> TransformerConfig:
    """Official constructor arguments -> TransformerConfig (2-D RoPE)."""
    if bool(cfg.get("downsample", False)) != bool(cfg.get("upsample",
                                                          False)):
        raise ValueError("downsample and upsample must agree")
    kw = {
        "num_dual": cfg["num_layers"],
        "num_single": cfg["num_single_layers"],
        "head_dim": cfg["attention_head_dim"],
        "num_heads": cfg["num_attention_heads"],
        "text_dim": cfg["joint_attention_dim"],
        "pooled_dim": cfg["pooled_projection_dim"],
        "rope_axes": tuple(cfg["axes_dims_rope"]), "rope": "2d",
        "vocab_size": cfg["vocab_size"],
        "codebook_size": cfg["codebook_size"],
        "compress": bool(cfg.get("downsample", False)),
        "micro_dim": 256, "level_dim": 256, "mlp_ratio": 4.0,
    }
    kw.update(overrides)
    return TransformerConfig(**kw)


def _official_parts(name: str) -> list[str] | None:
    for pat, parts in _FUSED:
        m = re.fullmatch(pat, name)
        if m:
            prefix = name.split(".")[0]
            return [f"{prefix}.{m[1]}.{p}.{m[2]}" for p in parts]
    return None


def _rename(name: str) -> str:
    for pat, rep in _RENAME:
        name = re.sub(pat, rep, name)
    return name


def to_official_state_dict(model_or_sd) -> dict[str, torch.Tensor]:
    """Our state dict -> official names and shapes (fused weights split)."""
    sd = (model_or_sd.state_dict() if hasattr(model_or_sd, "state_dict")
          else model_or_sd)
    out: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        if name == "pos_embed":
            raise ValueError("learned absolute positions have no official "
                             "counterpart")
        if name.startswith(("down_convs.", "up_convs.")):
            raise ValueError("ConvNeXt blocks (conv_blocks > 0) are "
                             "aMUSEd's; the released Meissonic has none")
        if name == "down_block.conv.weight" and t.shape[-1] != 2:
            raise ValueError("the released Meissonic compresses 2x2; this "
                             f"model compresses {t.shape[-1]}x{t.shape[-1]}")
        parts = _official_parts(name)
        if parts is not None:
            d = t.shape[0]
            if "qkv_mlp" in name:  # 3 x d for q/k/v, the rest is the MLP
                dim = sd[name.replace("qkv_mlp", "proj_out")
                         .replace(".bias", ".weight")].shape[0]
                sizes = [dim, dim, dim, d - 3 * dim]
            else:
                sizes = [d // 3] * 3
            for p, chunk in zip(parts, t.split(sizes, dim=0)):
                out[p] = chunk
            continue
        if name in _CONV1X1:
            t = t[:, :, None, None]
        out[_rename(name)] = t
    return out


def from_official_state_dict(sd: Mapping[str, torch.Tensor],
                             model: MeissonicTransformer
                             ) -> dict[str, torch.Tensor]:
    """Official state dict -> ours; strict: any missing/extra key raises."""
    sd = {k.removeprefix("_orig_mod."): v for k, v in sd.items()}
    ours = model.state_dict()
    out, used = {}, set()
    for name, ref in ours.items():
        parts = _official_parts(name)
        if parts is not None:
            missing = [p for p in parts if p not in sd]
            if missing:
                raise KeyError(f"missing official keys: {missing}")
            out[name] = torch.cat([sd[p] for p in parts], dim=0)
            used.update(parts)
        else:
            oname = _rename(name)
            if oname not in sd:
                raise KeyError(f"missing official key: {oname}")
            t = sd[oname]
            if name in _CONV1X1:
                t = t.reshape(t.shape[0], t.shape[1])
            out[name] = t
            used.add(oname)
        if tuple(out[name].shape) != tuple(ref.shape):
            raise ValueError(f"{name}: official shape "
                             f"{tuple(out[name].shape)} does not fit ours "
                             f"{tuple(ref.shape)}")
    extra = sorted(set(sd) - used)
    if extra:
        raise KeyError(f"unexpected official keys: {extra[:8]}"
                       f"{' ...' if len(extra) > 8 else ''}")
    return out


def load_official_state_dict(model: MeissonicTransformer,
                             sd: Mapping[str, torch.Tensor]) -> None:
    """Load released Meissonic weights into our model (strict)."""
    model.load_state_dict(from_official_state_dict(sd, model), strict=True)


def official_breakdown(model: MeissonicTransformer) -> dict[str, int]:
    """Our parameter counts grouped like OFFICIAL_BREAKDOWN (spec 1.1)."""
    groups = {
        "dual-stream blocks": ("transformer_blocks.",),
        "single-stream blocks": ("single_transformer_blocks.",),
        "token embedding": ("embed.",),
        "MLM head": ("mlm_layer.",),
        "down block": ("down_block.",),
        "up block": ("up_block.",),
        "time_text_embed": ("time_text_embed.",),
        "cond_embed": ("cond_embed.",),
        "context_embedder (+norm)": ("context_embedder.",
                                     "encoder_proj_layer_norm."),
        "project_to/from_hidden (+norms)": ("project_",),
    }
    out = {k: 0 for k in groups}
    out["other"] = 0
    for name, p in model.named_parameters():
        key = next((k for k, pre in groups.items()
                    if name.startswith(pre)), "other")
        out[key] += p.numel()
    return out
