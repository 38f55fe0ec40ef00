"""Masks for zero-shot editing: from pixels to the token grid, boxes, and
the outpainting canvas (chapter 8).

An edit regenerates the tokens a mask selects and keeps the others token
for token. The pixel mask reaches the token grid by a coverage rule
(default: any overlap), not by resizing it to the grid as the official
code does, so thin regions never vanish (spec 3 and 9). Outpainting puts
the source's tokens inside a larger grid of [MASK] tokens. The canvas
checks say which images and sizes a model can edit at all.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RULES = ("any", "fraction", "official")
IMAGE_MODES = ("RGB", "RGBA", "L")


def as_bool_mask(mask) -> np.ndarray:
    """A mask as a bool array (H, W): from a PIL '1'/'L' image (white =
    repaint) or a 2-D bool / 0-1 array or tensor."""
    if isinstance(mask, Image.Image):
        if mask.mode == "1":
            return np.asarray(mask, dtype=bool)
        if mask.mode == "L":
            return np.asarray(mask, np.uint8) >= 128
        raise ValueError(f"mask image must be mode '1' or 'L' (white = "
                         f"repaint), got {mask.mode!r}; use "
                         "mask.convert('L')")
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise ValueError(  # noqa: TRY004 (the book's convention)
            f"mask must be a PIL image, a numpy array or a "
            f"tensor, got {type(mask).__name__}")
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("a numeric mask must hold only 0 and 1; pass "
                             "a bool array (e.g. mask > 0.5)")
        mask = mask.astype(bool)
    return mask


def pixel_mask_to_tokens(mask, factor: int, rule: str = "any",
                         threshold: float = 0.5,
                         dilate: int = 0) -> torch.Tensor:
    """Pixel mask (H, W) -> token mask (H/f, W/f) bool; True = regenerate.

    Token (i, j) is decoded from the f x f pixel cell it covers. Rules:
    "any" (default): masked if any pixel of its cell is masked, so every
    masked pixel is regenerated and a 1-px line still masks a row of
    tokens; "fraction": masked if at least `threshold` of the cell is;
    "official": the released code's rule (Lanczos-resize the mask to the
    grid, binarise at 0.5), kept to show that thin regions vanish.
    `dilate` then grows the mask by that many tokens on every side
    (MaskGIT pads its box by one token) for softer seams.
    """
    m = as_bool_mask(mask)
    if not isinstance(factor, numbers.Integral) or factor < 1:
        raise ValueError(f"factor must be an int >= 1, got {factor!r}")
    if rule not in RULES:
        raise ValueError(f"unknown coverage rule {rule!r}; choose from "
                         f"{', '.join(RULES)}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not isinstance(dilate, numbers.Integral) or dilate < 0:
        raise ValueError(f"dilate must be an int >= 0, got {dilate!r}")
    H, W = m.shape
    if H % factor or W % factor:
        raise ValueError(f"mask size {W}x{H} must be divisible by the "
                         f"token size {factor} px")
    h, w = H // factor, W // factor
    if rule == "official":
        img = Image.fromarray(m.astype(np.uint8) * 255)
        small = img.resize((w, h), Image.Resampling.LANCZOS)
        tok = torch.from_numpy(np.asarray(small, np.uint8) >= 128)
    else:
        cells = torch.tensor(m).reshape(h, factor, w, factor)
        tok = (cells.any(3).any(1) if rule == "any"
               else cells.float().mean((1, 3)) >= threshold - 1e-9)
    if dilate:
        k = 2 * int(dilate) + 1
        tok = F.max_pool2d(tok[None, None].float(), k, 1, int(dilate))[0, 0]
    return tok.bool()


def box_to_mask(box, size: tuple[int, int]) -> np.ndarray:
    """Box (x0, y0, x1, y1) in pixels, half-open, -> bool mask (H, W).

    `size` is (width, height) as PIL gives it; the box must lie inside.
    """
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
    vals = []
    for v in box:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) \
                or v != int(v):
            raise ValueError(f"box coordinates must be whole pixels, got "
                             f"{box!r}")
        vals.append(int(v))
    x0, y0, x1, y1 = vals
    W, H = size
    if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
        raise ValueError(f"box {tuple(vals)} must satisfy 0 <= x0 < x1 <= "
                         f"{W} and 0 <= y0 < y1 <= {H} (inside the {W}x{H} "
                         "image, non-empty)")
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def check_token_mask(tok: torch.Tensor) -> None:
    """An inpainting token mask must select some tokens, not all."""
    if not bool(tok.any()):
        raise ValueError("the mask selects no token: there is nothing to "
                         "inpaint (use the image as it is, or "
                         "pipe.vq.reconstruct(image) for its tokens)")
    if bool(tok.all()):
        raise ValueError("the mask covers every token, which is plain "
                         "text-to-image: call pipe(prompt) instead (or "
                         "img2img with strength=1.0)")


def check_extension(multiple: int, **amounts: int) -> None:
    """Outpainting's `left`, `right`, `top`, `bottom` (px): each an int
    >= 0 and a multiple of `multiple` px, and not all 0."""
    for name, v in amounts.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) \
                or v < 0 or v % multiple:
            raise ValueError(f"{name} must be an int >= 0 and a multiple "
                             f"of {multiple} px, got {v!r}")
    if not any(amounts.values()):
        raise ValueError("outpaint needs left, right, top or bottom > 0")


def extended_canvas(source: torch.Tensor, shape: tuple[int, int],
                    offset: tuple[int, int], mask_id: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The outpainting canvas: a `shape` grid of `mask_id` with the
    `source` tokens (h, w) at `offset` (top, left), and its token mask
    (True = generate, everywhere but the source)."""
    (ot, ol), (h, w) = offset, source.shape
    init = torch.full(shape, mask_id, dtype=torch.long)
    init[ot:ot + h, ol:ol + w] = source
    tok_mask = torch.ones_like(init, dtype=torch.bool)
    tok_mask[ot:ot + h, ol:ol + w] = False
    return init, tok_mask


# -- canvases: which images a model can edit -------------------------------
def max_canvas(pipe) -> tuple[int, int]:
    """Largest (height, width) in px an edit may produce: the transformer's
    `max_grid` (its largest token grid, after compression) times the
    pixels per grid cell."""
    mh, mw = pipe.transformer.config.max_grid
    return mh * pipe.multiple, mw * pipe.multiple


def image_tensor(pipe, image) -> torch.Tensor:
    """PIL RGB/RGBA/L image or float (3,H,W)/(1,3,H,W) -> (1,3,H,W)."""
    if isinstance(image, Image.Image):
        if image.mode not in IMAGE_MODES:
            raise ValueError(f"unsupported image mode {image.mode!r}: pass "
                             "RGB, RGBA (composited on white) or L, e.g. "
                             "img.convert('RGB')")
        if image.mode == "RGBA":
            bg = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(bg, image)
        image = image.convert("RGB")
    elif not isinstance(image, torch.Tensor):
        raise ValueError(  # noqa: TRY004 (the book's convention)
            f"image must be a PIL image or a float tensor, got "
            f"{type(image).__name__}")
    x = pipe.vq.check_images(image)
    if x.shape[0] != 1:
        raise ValueError(f"edit one image at a time, got a batch of "
                         f"{x.shape[0]}")
    return x


def check_canvas(pipe, height: int, width: int, what: str) -> None:
    """A canvas of `height` x `width` px this model can decode (`what`
    names it in the error)."""
    m = pipe.multiple
    if height % m or width % m:
        raise ValueError(f"{what} {width}x{height} must have sides that "
                         f"are multiples of {m} px for this model "
                         "(resize or crop it first)")
    mh, mw = max_canvas(pipe)
    if height > mh or width > mw:
        raise ValueError(f"{what} {width}x{height} exceeds this model's "
                         f"largest canvas {mw}x{mh} px (transformer "
                         "max_grid)")
