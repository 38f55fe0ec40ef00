"""An ipywidgets playground for generation and zero-shot editing (chapter 8).

    from meissonic_lite.editing.widgets import Playground
    pg = Playground(pipe)          # pipe = MeissonicLitePipeline...
    pg                             # shows it (JupyterLab, Colab)

Two tabs. Generate: prompt, negative prompt, steps, CFG, temperature,
seed, size, a Generate button and a progress bar fed by the sampler's
callback. Edit: box sliders drawn over the current image, the mode
(inpaint / outpaint / img2img), strength, an Apply button and Undo.

The logic lives in plain methods (`generate`, `edit`, `set_image`,
`snapshot`); the buttons only call them, so tests drive the handlers
without a browser. ipywidgets (the `book` extra) is imported when a
Playground is built, so the package imports without it.
"""

from __future__ import annotations

import io
import sys

import torch
from PIL import Image, ImageDraw

from ..sampling.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS
from . import edits, masks

BOX_COLOR = (255, 0, 255)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _widgets():
    try:
        import ipywidgets
    except ImportError as e:             # pragma: no cover - book extra
        raise ImportError("the playground needs ipywidgets: pip install "
                          "'meissonic-lite[book]' (or ipywidgets)") from e
    return ipywidgets


class Playground:
    """Generate and edit with `pipe` from widgets; see the module doc."""

    def __init__(self, pipe, size: int = 128, steps: int = DEFAULT_STEPS,
                 guidance: float = DEFAULT_GUIDANCE):
        W = _widgets()
        self.pipe = pipe
        self.image: Image.Image | None = None
        self.history: list[Image.Image] = []
        m = pipe.multiple
        mh, mw = masks.max_canvas(pipe)
        size = max(m, min(size - size % m, mh, mw))
        self.prompt = W.Textarea(
            value="a photo of a red circle", description="prompt",
            layout=W.Layout(width="95%"))
        self.negative = W.Text(value="", description="negative",
                               layout=W.Layout(width="95%"))
        self.steps = W.IntSlider(value=steps, min=1, max=64,
                                 description="steps")
        self.cfg = W.FloatSlider(value=guidance, min=0.0, max=15.0,
                                 step=0.5, description="CFG")
        self.temperature = W.FloatSlider(value=2.0, min=0.0, max=5.0,
                                         step=0.1, description="temp.")
        self.seed = W.IntText(value=0, description="seed")
        self.width = W.IntSlider(value=size, min=m, max=mw, step=m,
                                 description="width")
        self.height = W.IntSlider(value=size, min=m, max=mh, step=m,
                                  description="height")
        self.generate_button = W.Button(description="Generate",
                                        button_style="primary")
        self.progress = W.IntProgress(value=0, min=0, max=steps,
                                      description="progress")
        self.status = W.HTML(value="")
        self.output = W.Image(format="png",
                              layout=W.Layout(width="256px"))
        # edit tab
        self.mode = W.ToggleButtons(options=["inpaint", "outpaint",
                                             "img2img"],
                                    description="mode")
        self.box_x = W.IntRangeSlider(value=(size // 4, 3 * size // 4),
                                      min=0, max=size, description="box x")
        self.box_y = W.IntRangeSlider(value=(size // 4, 3 * size // 4),
                                      min=0, max=size, description="box y")
        self.side = W.Dropdown(options=["right", "left", "top", "bottom"],
                               description="extend")
        self.amount = W.IntSlider(value=4 * m, min=m, max=mw, step=m,
                                  description="px")
        self.strength = W.FloatSlider(value=0.5, min=0.0, max=1.0,
                                      step=0.05, description="strength")
        self.remask = W.Dropdown(options=list(edits.REMASK),
                                 description="remask")
        self.apply_button = W.Button(description="Apply",
                                     button_style="primary")
        self.undo_button = W.Button(description="Undo")
        self.upload = W.FileUpload(accept="image/*", multiple=False,
                                   description="load image")
        self.preview = W.Image(format="png",
                               layout=W.Layout(width="256px"))
        self.generate_button.on_click(self.on_generate)
        self.apply_button.on_click(self.on_apply)
        self.undo_button.on_click(self.on_undo)
        self.upload.observe(self.on_upload, names="value")
        for w in (self.box_x, self.box_y, self.mode):
            w.observe(lambda _change: self.refresh(), names="value")
        gen = W.VBox([self.prompt, self.negative,
                      W.HBox([self.steps, self.cfg]),
                      W.HBox([self.temperature, self.seed]),
                      W.HBox([self.width, self.height]),
                      self.generate_button, self.output])
        edit = W.VBox([W.HBox([self.mode, self.upload]),
                       W.HBox([self.box_x, self.box_y]),
                       W.HBox([self.side, self.amount]),
                       W.HBox([self.strength, self.remask]),
                       W.HBox([self.apply_button, self.undo_button]),
                       self.preview])
        self.tabs = W.Tab(children=[gen, edit])
        self.tabs.set_title(0, "Generate")
        self.tabs.set_title(1, "Edit")
        self.widget = W.VBox([self.tabs, self.progress, self.status])

    # -- display -------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        if "google.colab" in sys.modules:      # ipywidgets 8 in Colab
            from google.colab import output
            output.enable_custom_widget_manager()
        return self.widget._repr_mimebundle_(**kwargs)

    # -- plain logic (tests call these) -------------------------------------
    def _settings(self) -> dict:
        self.progress.max = max(1, self.steps.value)
        self.progress.value = 0
        return {"negative_prompt": self.negative.value or None,
                "num_inference_steps": self.steps.value,
                "guidance_scale": self.cfg.value,
                "temperature": (self.temperature.value, 0.0),
                "generator": torch.Generator().manual_seed(self.seed.value),
                "callback": self._tick}

    def _tick(self, step: int, _tokens, _confidence) -> None:
        self.progress.value = min(step + 1, self.progress.max)

    def box(self) -> tuple[int, int, int, int]:
        """The edit box (x0, y0, x1, y1) the sliders select."""
        (x0, x1), (y0, y1) = self.box_x.value, self.box_y.value
        return x0, y0, x1, y1

    def set_image(self, image: Image.Image, record: bool = True) -> None:
        """Make `image` the current one (undo-able) and resize the box."""
        if record and self.image is not None:
            self.history.append(self.image)
        self.image = image
        w, h = image.size
        for s, n in ((self.box_x, w), (self.box_y, h)):
            s.max = n
            lo, hi = s.value
            s.value = (min(lo, n), min(hi, n))
        self.refresh()

    def snapshot(self) -> Image.Image | None:
        """The current image with the edit box drawn on (for the book)."""
        if self.image is None:
            return None
        img = self.image.convert("RGB")
        if self.mode.value == "inpaint":
            x0, y0, x1, y1 = self.box()
            ImageDraw.Draw(img).rectangle(
                [x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)],
                outline=BOX_COLOR)
        return img

    def refresh(self) -> None:
        """Redraw both image views from the current image."""
        if self.image is not None:
            self.output.value = _png(self.image)
            self.preview.value = _png(self.snapshot())

    def generate(self) -> Image.Image:
        """Text to image with the Generate tab's settings."""
        img = self.pipe(self.prompt.value, height=self.height.value,
                        width=self.width.value, **self._settings())[0]
        self.progress.value = self.progress.max
        self.set_image(img)
        return img

    def edit(self) -> Image.Image:
        """Apply the Edit tab's edit to the current image."""
        if self.image is None:
            raise ValueError("generate or load an image first")
        kw = self._settings()
        mode, prompt = self.mode.value, self.prompt.value
        if mode == "inpaint":
            res = edits.inpaint(self.pipe, self.image, prompt=prompt,
                                  box=self.box(), **kw)
        elif mode == "outpaint":
            res = edits.outpaint(self.pipe, self.image, prompt,
                                   **{self.side.value: self.amount.value},
                                   **kw)
        else:
            res = edits.img2img(self.pipe, self.image, prompt,
                                  self.strength.value, self.remask.value,
                                  **kw)
        self.progress.value = self.progress.max
        self.set_image(res.image)
        n = int(res.token_mask.sum())
        self.status.value = (f"{mode}: {n}/{res.token_mask.numel()} tokens "
                             f"generated in {res.seconds:.2f} s")
        return res.image

    def undo(self) -> None:
        """Go back to the image before the last generate / edit."""
        if not self.history:
            raise ValueError("nothing to undo")
        self.set_image(self.history.pop(), record=False)

    # -- button handlers: report errors in the status line ------------------
    def _safely(self, fn) -> None:
        try:
            fn()
        except ValueError as e:
            self.status.value = f"<b>error:</b> {e}"

    def on_generate(self, _button=None) -> None:
        """Generate button."""
        self.status.value = "generating..."
        self._safely(self.generate)
        if self.status.value == "generating...":
            self.status.value = "done"

    def on_apply(self, _button=None) -> None:
        """Apply button."""
        self._safely(self.edit)

    def on_undo(self, _button=None) -> None:
        """Undo button."""
        self._safely(self.undo)

    def on_upload(self, change) -> None:
        """File upload: the uploaded image becomes the current one."""
        files = change["new"]
        if not files:
            return
        data = files[0]["content"]
        try:
            img = Image.open(io.BytesIO(bytes(data)))
            img.load()
        except OSError as e:
            self.status.value = f"<b>error:</b> cannot read image ({e})"
            return
        self.set_image(img.convert("RGB"))
