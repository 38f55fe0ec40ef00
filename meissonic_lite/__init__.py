"""meissonic-lite: a small, faithful Meissonic you can train on a laptop CPU.

Data flows one way (chapter 1 maps each step to its chapter):

    prompt -> TextEncoder (ch 3) -> MeissonicTransformer (ch 5) <- tokens
    from the VQModel (ch 2) -> sampler (ch 7) -> VQModel.decode -> image

The public API, as diffusers exposes its pipelines and models::

    from meissonic_lite import MeissonicLitePipeline
    pipe = MeissonicLitePipeline.from_pretrained()
    image = pipe("a red circle above a blue square")[0]

Names are imported on first use (PEP 562), so `meissonic-lite world` does
not pay for torch, open_clip and the models it never touches.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "MeissonicLitePipeline": "pipeline",
    "VQModel": "vq",
    "VQConfig": "vq",
    "TextEncoder": "text",
    "TextEncoderConfig": "text",
    "MeissonicTransformer": "transformer",
    "TransformerConfig": "transformer",
    "SamplerConfig": "sampling",
}
__all__ = ["MeissonicLitePipeline", "MeissonicTransformer", "SamplerConfig",
           "TextEncoder", "TextEncoderConfig", "TransformerConfig",
           "VQConfig", "VQModel"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}",
                                                __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
