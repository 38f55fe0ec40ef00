"""meissonic-lite: a small, faithful Meissonic you can train on a laptop CPU.

Data flows one way (chapter 1 maps each step to its chapter; the folder
that holds it on the right):

    prompt                       (the Shapes world's captions: world/, ch 1)
      -> text encoder (ch 3)                models/text.py
      -> transformer (ch 5)                 models/transformer.py
         <- VQ tokens (ch 2)                models/vq.py
      -> sampler (ch 4, 7)                  sampling/masking.py, decode.py
      -> VQ decode (ch 2)                   models/vq.py
      -> image

`sampling/pipeline.py` wires that path (`MeissonicLitePipeline`).

Around that path: `training/` teaches the models (ch 2, 3, 6), `editing/`
reuses the sampler from a partly masked canvas (ch 8), `evaluation/` holds
the judge, a referee that reads pixels only, and the harnesses that feed it
(ch 1, 6-8), `bench/` times it all (ch 7) and `cli/` is the
`meissonic-lite` command (every chapter).

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
    "MeissonicLitePipeline": "sampling.pipeline",
    "VQModel": "models.vq",
    "VQConfig": "models.vq",
    "TextEncoder": "models.text",
    "TextEncoderConfig": "models.text",
    "MeissonicTransformer": "models.transformer",
    "TransformerConfig": "models.transformer",
    "SamplerConfig": "sampling.decode",
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
