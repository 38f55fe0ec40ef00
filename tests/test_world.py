"""The Shapes world: vocabulary, layout, rendering, captions, quality."""

import numpy as np
import pytest
import torch

from meissonic_lite.world import (
    COLORS, Group, ShapesDataset, aesthetic_score, degrade, make_example,
    make_scene, relation_holds, render, sample_scene)
from meissonic_lite.world import vocab
from meissonic_lite.world.grid import sample_grid


def test_palette_is_the_issue_palette():
    assert COLORS["red"] == (220, 40, 40)
    assert COLORS["purple"] == (140, 60, 190)
    assert vocab.BACKGROUNDS["gray"] == (128, 128, 128)
    assert len(vocab.KINDS) == 6 + 26


def test_render_is_deterministic_and_sized():
    a = render(sample_scene(np.random.default_rng(3)), 64)
    b = render(sample_scene(np.random.default_rng(3)), 64)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("w,h", [(32, 32), (96, 64), (64, 128), (512, 512)])
def test_render_any_size(w, h):
    scene = sample_scene(np.random.default_rng(0), aspect=w / h)
    img = render(scene, w, h)
    assert img.size == (w, h)


def test_render_is_anti_aliased():
    scene = make_scene([Group("circle", "red", "large")], "white")
    x = np.asarray(render(scene, 64)).reshape(-1, 3)
    colours = {tuple(c) for c in x}
    assert len(colours) > 2          # edge pixels blend the two colours


def test_example_deterministic_from_seed_and_index():
    a, b = make_example(5, 17), make_example(5, 17)
    assert a.caption == b.caption and a.micro_conds == b.micro_conds
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert make_example(5, 18).caption != a.caption or \
        not np.array_equal(np.asarray(make_example(5, 18).image),
                           np.asarray(a.image))


def test_object_never_has_background_colour():
    rng = np.random.default_rng(1)
    for _ in range(300):
        s = sample_scene(rng)
        assert all(o.color != s.background for o in s.objects)
    with pytest.raises(ValueError, match="background"):
        make_scene([Group("star", "red")], "red")


def test_relations_hold_in_layout():
    rng = np.random.default_rng(2)
    n = 0
    for _ in range(400):
        s = sample_scene(rng)
        if s.relation:
            a, b = s.objects
            assert relation_holds(s.relation, (a.cx, a.cy), (b.cx, b.cy))
            n += 1
    assert n > 50


def test_objects_do_not_overlap():
    rng = np.random.default_rng(4)
    for _ in range(200):
        s = sample_scene(rng)
        objs = s.objects
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                si = vocab.SIZES[objs[i].size]
                sj = vocab.SIZES[objs[j].size]
                need = (si + sj) / 2
                assert abs(objs[i].cx - objs[j].cx) >= need or \
                    abs(objs[i].cy - objs[j].cy) >= need


def test_captions_name_every_group_and_the_background():
    for i in range(50):
        ex = make_example(9, i, caption_style="long")
        text = ex.caption.lower()
        assert ex.scene.background in text
        for g in ex.scene.groups:
            assert g.color in text and g.size in text


def test_short_and_long_captions_differ_in_length():
    short = [len(make_example(0, i, caption_style="short").caption.split())
             for i in range(100)]
    long = [len(make_example(0, i, caption_style="long").caption.split())
            for i in range(100)]
    assert np.mean(long) > 2 * np.mean(short)
    assert min(short) <= 3


@pytest.mark.parametrize("bad,match", [
    (dict(groups=[Group("circle", "red")], background="teal"),
     "unknown background"),
    (dict(groups=[Group("circle", "red")], relation="near"),
     "relation"),
])
def test_bad_scene_descriptions(bad, match):
    with pytest.raises(ValueError, match=match):
        make_scene(**bad)


def test_bad_group_names_list_allowed_values():
    with pytest.raises(ValueError, match="allowed: red, orange"):
        Group("circle", "teal")
    with pytest.raises(ValueError, match="unknown kind"):
        Group("hexagon", "red")
    with pytest.raises(ValueError, match="unknown size"):
        Group("circle", "red", "huge")
    with pytest.raises(ValueError, match="count"):
        Group("circle", "red", count=5)


def test_impossible_scene_is_refused():
    groups = [Group("circle", "red", "large", 4),
              Group("square", "blue", "large", 4)]
    with pytest.raises(ValueError, match="impossible scene"):
        make_scene(groups, "white")


@pytest.mark.parametrize("w,h", [(16, 64), (64, 1024), (64.5, 64)])
def test_sizes_out_of_range(w, h):
    scene = make_scene([Group("circle", "red")], "white")
    with pytest.raises(ValueError, match="px"):
        render(scene, w, h)


def test_aesthetic_score_falls_with_every_degradation():
    rng = np.random.default_rng(0)
    img = render(sample_scene(rng), 128)
    clean = aesthetic_score(img)
    assert clean > 7
    for name in ("noise", "blur", "jpeg", "cast"):
        weak = aesthetic_score(degrade(img, {name: 0.2}, rng))
        strong = aesthetic_score(degrade(img, {name: 1.0}, rng))
        assert clean > weak > strong, name
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(img, {"sepia": 0.5}, rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        degrade(img, {"noise": 1.5}, rng)


def test_micro_conditions_are_real():
    exs = [make_example(3, i, 64) for i in range(200)]
    mc = np.array([e.micro_conds for e in exs])
    assert (mc[:, 0] >= 32).all() and (mc[:, 0] <= 512).all()
    assert len(set(mc[:, 0])) > 20                  # varied original sizes
    assert (mc[:, 2] + mc[:, 3] > 0).mean() > 0.3   # real crops happen
    for e in exs[:30]:                              # score is measured
        assert e.micro_conds[4] == pytest.approx(aesthetic_score(e.image))
    clean = [e.micro_conds[4] for e in exs if not e.strengths]
    dirty = [e.micro_conds[4] for e in exs if e.strengths]
    assert np.mean(clean) > np.mean(dirty) + 2


def test_dataset_items():
    ds = ShapesDataset(10, size=32, seed=1)
    item = ds[3]
    assert item["image"].shape == (3, 32, 32)
    assert item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["micro_conds"].shape == (5,)
    assert isinstance(item["caption"], str) and item["caption"]
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(ValueError):
        ShapesDataset(0)


def test_sample_grid(tmp_path):
    img = sample_grid(6, 64, cols=3)
    assert img.width == 3 * 64 and img.height > 2 * 64
