"""Small stand-in models for tests that need a pipeline but no weights."""

import torch

from meissonic_lite.models.transformer import (
    MeissonicTransformer,
    TransformerConfig,
)
from meissonic_lite.models.vq import VQConfig, VQModel
from meissonic_lite.sampling.pipeline import MeissonicLitePipeline


def tiny_pipeline(text_encoder) -> MeissonicLitePipeline:
    """A random tiny VQ (64 codes) + the `tiny` transformer around
    `text_encoder`, seeded, on CPU."""
    torch.manual_seed(0)
    vq = VQModel(VQConfig(factor=4, num_codes=64, code_dim=8,
                          channels=(8, 8, 8)))
    tr = MeissonicTransformer(TransformerConfig.preset("tiny"))
    return MeissonicLitePipeline(vq, text_encoder, tr, device="cpu")
