"""meissonic-lite: a small, faithful Meissonic you can train on a laptop CPU.

Data flows one way: prompt -> text encoder -> transformer <- VQ tokens ->
sampler -> VQ decode -> image. Each module holds one idea of the paper
(Bai et al., "Meissonic", ICLR 2025).
"""

__version__ = "0.1.0"
