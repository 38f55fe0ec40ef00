"""Sampling: masking schedules (chapter 4), iterative parallel decoding with
CFG and the text-to-image pipeline (chapter 7).

`from meissonic_lite.sampling import SamplerConfig, decode` reads the
decoder (`decode.py`); the pipeline is `sampling.pipeline`, imported on use
so that masking and decoding never load the models.
"""

from .decode import SamplerConfig, blob_field, cfg_mix, decode

__all__ = ["SamplerConfig", "blob_field", "cfg_mix", "decode"]
