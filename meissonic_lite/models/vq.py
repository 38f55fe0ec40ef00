"""The image tokenizer: a small VQ autoencoder trained in the book (chapter 2).

Meissonic turns a 1024 px image into a 64 x 64 grid of codebook indices
with a frozen VQGAN (f=16, 8192 codes of dim 64, 146 M params; spec
section 5) and generates those indices. This is the same idea, small:
`encode(images) -> (B, h, w) long tokens`, `decode(tokens) -> images in
[0, 1]`, fully convolutional so one model serves every size of the
resolution ladder (8x8, 16x16, 32x32 token grids).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .model_files import corrupt, read_model_file, to_float32, write_model_file
from .vq_layers import Decoder, Encoder, PatchEncoder, VectorQuantizer

WEIGHTS_DIR = Path(__file__).parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "vq.safetensors"
REBUILD = "meissonic-lite train-vq --out runs/vq --export"


@dataclass
class VQConfig:
    """Shape of the tokenizer; `channels` has log2(factor) + 1 entries."""

    factor: int = 4                 # pixels per token side (f)
    num_codes: int = 512            # codebook size K
    code_dim: int = 16              # code vector size D
    channels: tuple[int, ...] = field(default=(32, 64, 64))
    ema_decay: float = 0.99         # codebook running-mean decay
    commitment: float = 0.25        # beta in the VQ-VAE loss
    dead_threshold: float = 0.03    # EMA count below which a code restarts
    encoder: str = "patch"          # "patch" (local) or "conv" (VQGAN-like)

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        levels = math.log2(self.factor) if self.factor > 0 else -1
        if levels < 1 or levels != int(levels):
            raise ValueError(
                f"factor must be a power of 2 >= 2, got {self.factor}")
        if len(self.channels) != int(levels) + 1:
            raise ValueError(
                f"channels needs log2(factor) + 1 = {int(levels) + 1} "
                f"entries for factor {self.factor}, got {self.channels}")
        if self.encoder not in ("conv", "patch"):
            raise ValueError(f"encoder must be 'conv' or 'patch', got "
                             f"{self.encoder!r}")
        if not 2 <= self.num_codes <= 65535:
            raise ValueError(
                f"num_codes must be in 2..65535, got {self.num_codes}")

    def to_dict(self) -> dict:
        """A JSON-friendly dict (tuples as lists)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


class VQModel(nn.Module):
    """Encoder -> vector quantizer -> decoder, pixels in [0, 1]."""

    def __init__(self, config: VQConfig | None = None):
        super().__init__()
        self.config = config = config or VQConfig()
        self.encoder = (
            PatchEncoder(config.channels, config.code_dim, config.factor)
            if config.encoder == "patch"
            else Encoder(config.channels, config.code_dim))
        self.quantizer = VectorQuantizer(
            config.num_codes, config.code_dim, config.ema_decay,
            config.commitment, config.dead_threshold)
        self.decoder = Decoder(config.channels, config.code_dim)
        self.weights_sha256: str | None = None   # set by from_pretrained

    # ---- input checks -------------------------------------------------
    def check_images(self, images) -> torch.Tensor:
        """PIL RGB image(s) or float (B, 3, H, W) in [0, 1] -> tensor."""
        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, (list, tuple)):
            for im in images:
                if not isinstance(im, Image.Image) or im.mode != "RGB":
                    mode = getattr(im, "mode", type(im).__name__)
                    raise ValueError(
                        f"images must be RGB PIL images, got {mode!r}; "
                        "use img.convert('RGB')")
            if len({im.size for im in images}) != 1:
                raise ValueError("all images in a batch must share a size")
            arr = np.stack([np.asarray(im, np.uint8) for im in images])
            images = torch.from_numpy(arr).permute(0, 3, 1, 2) / 255.0
        if not isinstance(images, torch.Tensor):
            raise ValueError(  # noqa: TRY004 (the book's convention)
                f"images must be a tensor or PIL image(s), "
                f"got {type(images).__name__}")
        if not images.is_floating_point():
            raise ValueError(
                f"images must be float in [0, 1], got dtype {images.dtype}"
                " (divide uint8 pixels by 255)")
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError("images must be (B, 3, H, W) RGB, got shape "
                             f"{tuple(images.shape)}")
        lo, hi = float(images.min()), float(images.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"images must be in [0, 1], got range "
                             f"[{lo:.3f}, {hi:.3f}]")
        f = self.config.factor
        H, W = images.shape[-2:]
        if H % f or W % f:
            raise ValueError(f"image size {W}x{H} must be divisible by the "
                             f"downsampling factor f={f}")
        p = next(self.parameters())
        return images.to(p.device, torch.float32)

    def check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Integer (B, h, w) or (h, w) in 0..K-1 -> long (B, h, w)."""
        if not isinstance(tokens, torch.Tensor):
            tokens = torch.as_tensor(np.asarray(tokens))
        if tokens.is_floating_point() or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be integers, got {tokens.dtype}")
        if tokens.ndim == 2:
            tokens = tokens[None]
        if tokens.ndim != 3:
            raise ValueError("tokens must be (B, h, w), got shape "
                             f"{tuple(tokens.shape)}")
        K = self.config.num_codes
        if tokens.numel() and (int(tokens.min()) < 0
                               or int(tokens.max()) >= K):
            raise ValueError(f"tokens must be in 0..{K - 1}, got range "
                             f"{int(tokens.min())}..{int(tokens.max())}")
        return tokens.long().to(self.quantizer.codebook.device)

    # ---- the model ----------------------------------------------------
    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: x (B,3,H,W) [0,1] -> (recon, tokens, vq loss)."""
        z = self.encoder(x * 2 - 1)                  # (B, D, H/f, W/f)
        zq, idx, vq_loss = self.quantizer(z, gen)
        rec = (self.decoder(zq.to(z.dtype)) + 1) / 2  # (B, 3, H, W)
        return rec, idx, vq_loss

    @torch.no_grad()
    def encode(self, images) -> torch.Tensor:
        """Images -> (B, H/f, W/f) long token indices."""
        x = self.check_images(images)
        z = self.encoder(x * 2 - 1)                  # (B, D, h, w)
        B, D, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, D)
        return self.quantizer.lookup(flat).view(B, h, w)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, h, w) token indices -> (B, 3, h*f, w*f) images in [0, 1]."""
        zq = self.quantizer.embed(self.check_tokens(tokens))  # (B,D,h,w)
        return ((self.decoder(zq) + 1) / 2).clamp(0, 1)

    def reconstruct(self, images) -> torch.Tensor:
        """decode(encode(images)): what the generator can reproduce."""
        return self.decode(self.encode(images))

    @property
    def tokenizer_sha256(self) -> str:
        """Hex SHA-256 of the encoder + codebook: what decides the tokens.

        Token caches are tied to this, not to the whole file, so a decoder
        fine-tune (sharper pictures, same tokens) keeps caches and trained
        transformers valid."""
        h = hashlib.sha256()
        sd = self.state_dict()
        for k in sorted(sd):
            if k.startswith(("encoder.", "quantizer.codebook")):
                h.update(k.encode())
                h.update(sd[k].detach().float().cpu().numpy().tobytes())
        return h.hexdigest()

    def num_params(self) -> int:
        """Parameters plus the codebook (a buffer, trained by EMA)."""
        return (sum(p.numel() for p in self.parameters())
                + self.quantizer.codebook.numel())

    # -- one file per model: weights + config (model_files) -------------
    def save_pretrained(self, path: str | Path,
                        dtype: torch.dtype = torch.float16) -> None:
        """Write weights (cast to `dtype`) and config to one safetensors
        file, atomically."""
        write_model_file(path, self.state_dict(), self.config.to_dict(),
                         dtype)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None,
                        device: str | torch.device = "cpu") -> VQModel:
        """Load the shipped tokenizer (or `path`), in eval mode, fp32."""
        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        cfg, state = read_model_file(path, "VQ", REBUILD)
        try:
            cfg.setdefault("encoder", "conv")  # files from before the option
            model = cls(VQConfig(**cfg))
            model.load_state_dict(to_float32(state), strict=True)
        except Exception as e:  # a file of another shape or model
            raise corrupt(path, "VQ", REBUILD, e) from e
        model.weights_sha256 = file_sha256(path)
        return model.to(device).eval()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file: ties token caches to the weights used."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_weights(model: VQModel, path: str | Path,
                 dtype: torch.dtype = torch.float16) -> None:
    """Write weights (+ config in the metadata): `model.save_pretrained`."""
    model.save_pretrained(path, dtype)


def from_pretrained(path: str | Path | None = None,
                    device: str | torch.device = "cpu") -> VQModel:
    """Load the shipped tokenizer (or `path`): `VQModel.from_pretrained`."""
    return VQModel.from_pretrained(path, device)
