"""The package's architecture, pinned: data flows one way, the models know
nothing above them, and the judge is an independent referee.

Imports are read from the source (module level and inside functions), so a
lazy import cannot hide an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meissonic_lite

ROOT = Path(meissonic_lite.__file__).parent
PKG = "meissonic_lite"


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


# The models and what they may use: each other (their file format is one
# of them), utils. Every module in models/ is a model module.
MODELS = {m for m in _modules() if m.split(".")[0] == "models"}
MODEL_DEPS = MODELS | {"utils"}
# The referee: it renders and reads the world, nothing else.
REFEREE = {"evaluation.judge", "evaluation.geneval", "evaluation.accuracy"}


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The package modules that `name` imports anywhere in its source."""
    here = name.split(".") if path.name == "__init__.py" else \
        name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = (here[:len(here) - node.level + 1] if node.level else [])
            mod = ".".join(base + ([node.module] if node.module else []))
            if not node.level:
                if not mod.startswith(PKG):
                    continue
                mod = mod[len(PKG) + 1:]
            targets = [f"{mod}.{a.name}".strip(".") for a in node.names]
            targets = [t if t in mods else mod for t in targets]
        elif isinstance(node, ast.Import):
            targets = [a.name[len(PKG) + 1:] for a in node.names
                       if a.name.startswith(PKG + ".")]
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t != name:
                found.add(t)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {n: _imports(n, p, mods) for n, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle if there is any (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_graph_sees_lazy_and_relative_imports(graph):
    assert "models.model_files" in graph["models.transformer"]
    assert "cli.common" in graph["cli.generate"]
    assert "world.vocab" in graph["evaluation.judge"]


def test_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c",
                                                            "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle(graph):
    # the package __init__ imports nothing eagerly; leave it out
    assert _cycle({k: v - {""} for k, v in graph.items() if k}) is None


def test_models_do_not_import_upward(graph):
    assert {"models.vq", "models.text", "models.transformer",
            "models.model_files"} <= MODELS
    for m in MODELS:
        assert graph[m] <= MODEL_DEPS, (m, graph[m] - MODEL_DEPS)


def _in_world(d: str) -> bool:
    return d == "world" or d.startswith("world.")


def test_referee_knows_only_the_world(graph):
    for m in REFEREE:
        bad = {d for d in graph[m] if not (_in_world(d) or d in REFEREE)}
        assert not bad, (m, bad)
    # the evaluation package's face hands on the referee alone, so
    # `from meissonic_lite.evaluation import detect` loads no model
    assert graph["evaluation"] <= REFEREE, graph["evaluation"] - REFEREE


def test_package_never_imports_the_book():
    for p in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names]
                     if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [])
            assert not any(n.split(".")[0] == "book" for n in names), p


def test_only_the_command_line_parses_arguments():
    """argparse lives in cli/; the library takes plain arguments or
    config dataclasses."""
    for name, path in _modules().items():
        if name == "cli" or name.startswith("cli."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names]
                     if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [])
            assert "argparse" not in {n.split(".")[0] for n in names}, name


def test_public_api_imports():
    from meissonic_lite import (  # noqa: F401
        MeissonicLitePipeline,
        MeissonicTransformer,
        SamplerConfig,
        TextEncoder,
        TransformerConfig,
        VQModel,
    )
    for cls in (MeissonicLitePipeline, MeissonicTransformer, TextEncoder,
                VQModel):
        assert callable(cls.from_pretrained), cls
    for cls in (MeissonicTransformer, TextEncoder, VQModel):
        assert callable(cls.save_pretrained), cls
    with pytest.raises(AttributeError, match="no attribute"):
        meissonic_lite.NotAThing  # noqa: B018


def test_one_command_line_face():
    from meissonic_lite.cli import COMMANDS, build_parser
    p = build_parser()
    sub = next(a for a in p._actions
               if isinstance(a, __import__("argparse")._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)
    args = p.parse_args(["eval", "geneval", "--limit", "4"])
    assert args.what == "geneval" and args.limit == 4
    args = p.parse_args(["eval", "edits", "--n", "3"])
    assert args.what == "edits" and args.n == 3
    args = p.parse_args(["bench", "transformer", "--fp32"])
    assert args.fp32
    args = p.parse_args(["diagnose", "fill", "ckpt.pt"])
    assert args.probe == "fill" and args.checkpoint == "ckpt.pt"


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Run `code` in a fresh interpreter: which of `modules` it imported."""
    import subprocess
    import sys
    probe = (f"{code}\nimport sys\n"
             f"print([m for m in {modules!r} if m in sys.modules])\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr
    return ast.literal_eval(r.stdout.strip().splitlines()[-1])


def test_a_command_imports_only_its_own_module(tmp_path):
    code = ("from meissonic_lite.cli import main\n"
            f"main(['world', '-n', '1', '-o', r'{tmp_path / 'w.png'}'])")
    assert _loaded_after(code, (
        "open_clip", "meissonic_lite.training.clip_train",
        "meissonic_lite.sampling.pipeline")) == []
    assert (tmp_path / "w.png").is_file()


def test_the_pipeline_starts_without_open_clip_or_torchvision():
    """What keeps `meissonic-lite generate` quick to start (issue 26):
    loading the pipeline and drawing import neither open_clip nor
    torchvision nor timm (the text tower loads alone, chapter 3)."""
    code = ("from meissonic_lite import MeissonicLitePipeline\n"
            "pipe = MeissonicLitePipeline.from_pretrained()\n"
            "pipe('a red circle', num_inference_steps=2, height=64, "
            "width=64)")
    assert _loaded_after(code, ("open_clip", "torchvision", "timm")) == []


def test_every_module_names_its_chapter():
    for name, path in _modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "chapter" in doc.lower(), f"{name}: docstring names no chapter"


def test_every_chapter_names_modules_that_exist():
    import json
    import re
    book = Path(__file__).resolve().parents[1] / "book"
    chapters = sorted(book.glob("0*.ipynb"))
    assert chapters
    for nb in chapters:
        first = "".join(json.loads(nb.read_text())["cells"][0]["source"])
        line = first[first.index("**Modules**"):].split("**Prerequisites")[0]
        names = [n for n in re.findall(r"`([\w/]+(?:\.py|/))`", line)
                 if n != "meissonic_lite/"]
        assert names, nb.name
        for n in names:
            assert (ROOT / n).exists(), f"{nb.name} names {n}"
