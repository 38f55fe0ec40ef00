"""Zero-shot editing (chapter 8): inpainting, outpainting and img2img with
the text-to-image model (`edits`), the masks they start from (`masks`),
and the notebook playground (`widgets`).

`from meissonic_lite.editing import inpaint` reads the edits and masks;
the playground is `editing.widgets` (it needs the `book` extra).
"""

from .edits import (
    IMAGE_MODES,
    REMASK,
    EditResult,
    img2img,
    inpaint,
    max_canvas,
    outpaint,
    score_tokens,
)
from .masks import RULES, box_to_mask, pixel_mask_to_tokens

__all__ = ["IMAGE_MODES", "REMASK", "RULES", "EditResult", "box_to_mask",
           "img2img", "inpaint", "max_canvas", "outpaint",
           "pixel_mask_to_tokens", "score_tokens"]
