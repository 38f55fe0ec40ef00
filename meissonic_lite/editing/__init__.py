"""Zero-shot editing (chapter 8): inpainting, outpainting and img2img with
the text-to-image model (`edits`), the masks they start from (`masks`),
and the notebook playground (`widgets`).

`from meissonic_lite.editing import inpaint` reads the edits and masks;
the playground is `editing.widgets` (it needs the `book` extra).
"""

from .edits import (
    EDIT_DEFAULTS,
    REMASK,
    EditOptions,
    EditResult,
    img2img,
    inpaint,
    outpaint,
    score_tokens,
)
from .masks import (
    IMAGE_MODES,
    RULES,
    box_to_mask,
    check_canvas,
    max_canvas,
    pixel_mask_to_tokens,
)

__all__ = ["EDIT_DEFAULTS", "IMAGE_MODES", "REMASK", "RULES", "EditOptions",
           "EditResult", "box_to_mask", "check_canvas", "img2img", "inpaint",
           "max_canvas", "outpaint", "pixel_mask_to_tokens", "score_tokens"]
