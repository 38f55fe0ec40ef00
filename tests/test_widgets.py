"""The playground's logic without a browser: handlers update outputs."""

import io
import subprocess
import sys

import pytest
from PIL import Image
from stand_ins import tiny_pipeline

from meissonic_lite.editing.widgets import Playground  # needs the `book` extra
from meissonic_lite.models import text

CLIP = text.TextEncoderConfig(embed_dim=32, text_width=32, text_layers=1,
                              text_heads=2, vision_width=32,
                              vision_layers=1, image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(text.TextEncoder(text.build_clip(CLIP), CLIP))


@pytest.fixture
def pg(pipe):
    p = Playground(pipe, size=32, steps=3)
    p.prompt.value = "a red circle"
    return p


def shown(widget):
    return Image.open(io.BytesIO(widget.value))


def test_generate_button_shows_the_image_and_fills_the_progress(pg):
    assert pg.output.value == b"" and pg.image is None
    pg.width.value = 40
    pg.on_generate(None)
    assert pg.status.value == "done"
    assert pg.image.size == (40, 32) and shown(pg.output).size == (40, 32)
    assert pg.progress.value == pg.progress.max == 3
    first = pg.output.value
    pg.seed.value = 1
    pg.on_generate(None)
    assert pg.output.value != first and len(pg.history) == 1


def test_same_settings_same_image(pg):
    pg.on_generate(None)
    a = pg.output.value
    pg.on_generate(None)
    assert pg.output.value == a


def test_edit_tab_inpaints_outpaints_img2img_and_undoes(pg):
    pg.on_generate(None)
    src = pg.image
    pg.box_x.value, pg.box_y.value = (4, 20), (8, 16)
    assert pg.box() == (4, 8, 20, 16)
    box_view = shown(pg.preview).convert("RGB")     # box drawn over it
    assert box_view.getpixel((4, 8)) == (255, 0, 255)
    pg.on_apply(None)
    assert "inpaint: 8/64 tokens" in pg.status.value
    assert pg.image is not src and pg.image.size == (32, 32)
    pg.mode.value, pg.side.value, pg.amount.value = "outpaint", "top", 8
    pg.on_apply(None)
    assert pg.image.size == (32, 40) and shown(pg.output).size == (32, 40)
    assert pg.box_y.max == 40                     # sliders follow the size
    pg.mode.value, pg.strength.value = "img2img", 0.0
    pg.on_apply(None)
    assert "0/80 tokens" in pg.status.value
    pg.on_undo(None)
    pg.on_undo(None)
    assert pg.image.size == (32, 32)


def test_errors_go_to_the_status_line(pg):
    pg.on_apply(None)
    assert "generate or load an image first" in pg.status.value
    pg.on_undo(None)
    assert "nothing to undo" in pg.status.value
    pg.on_generate(None)
    before = pg.output.value
    pg.box_x.value = (5, 5)                        # empty box
    pg.on_apply(None)
    assert "error" in pg.status.value and "box" in pg.status.value
    assert pg.output.value == before
    pg.prompt.value = ""
    pg.steps.value = 1
    pg.cfg.value = 1.0
    pg.on_generate(None)                           # '' is unconditional
    assert pg.status.value == "done"


def test_upload_sets_the_current_image(pg):
    buf = io.BytesIO()
    Image.new("RGBA", (24, 16), (0, 255, 0, 255)).save(buf, "PNG")
    pg.on_upload({"new": ({"name": "g.png",
                           "content": memoryview(buf.getvalue())},)})
    assert pg.image.mode == "RGB" and pg.image.size == (24, 16)
    assert pg.box_x.max == 24 and shown(pg.preview).size == (24, 16)
    pg.on_upload({"new": ({"name": "x", "content": memoryview(b"junk")},)})
    assert "cannot read" in pg.status.value


def test_package_imports_without_ipywidgets():
    code = ("import sys; sys.modules['ipywidgets'] = None\n"
            "import meissonic_lite.editing.widgets as w, "
            "meissonic_lite.editing\n"
            "try:\n    w.Playground(None)\nexcept ImportError as e:\n"
            "    print('ok' if 'ipywidgets' in str(e) else e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.stdout.strip() == "ok", out.stderr
