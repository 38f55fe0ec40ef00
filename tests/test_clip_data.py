"""Hard negatives and mirrored scenes for training the tiny CLIP
(chapter 3, `training/clip_data.py`)."""

import numpy as np
import pytest
import torch

from meissonic_lite.training import clip_data as cd
from meissonic_lite.world import vocab
from meissonic_lite.world.scene import Group, make_scene


def test_hard_negatives_change_exactly_one_attribute():
    s = make_scene([Group("circle", "red"), Group("square", "blue")],
                   relation="left of", seed=0)
    sw = cd.swap_colors(s)
    assert [g.color for g in sw.groups] == ["blue", "red"]
    assert cd.flip_relation(s).relation == "right of"
    rng = np.random.default_rng(3)
    pos, neg = cd.caption_pair(s, sw, rng, "short")
    assert pos != neg and sorted(pos.split()) == sorted(neg.split())
    same_kind = make_scene([Group("circle", "red"), Group("circle", "blue")])
    assert cd.swap_colors(same_kind) is None       # swap would stay true
    r = cd.recolor(same_kind, rng)
    assert len({(g.kind, g.color) for g in r.groups}) == 2
    assert r.groups != same_kind.groups


def test_kind_hard_negatives_only_when_asked():
    s = make_scene([Group("circle", "red"), Group("A", "blue", count=2)],
                   seed=0)
    for seed in range(20):
        off = cd.hard_negative(s, np.random.default_rng(seed))
        assert [g.kind for g in off.groups] == ["circle", "A"]
        on = cd.hard_negative(s, np.random.default_rng(seed), p_kind=1.0)
        changed = [(a.kind, b.kind) for a, b in zip(s.groups, on.groups)
                   if a.kind != b.kind]
        assert len(changed) == 1 and [g.color for g in on.groups] == \
            ["red", "blue"]
        old, new = changed[0]                    # same family
        assert (old in vocab.SHAPES) == (new in vocab.SHAPES)


def test_mirrored_negatives_flip_along_the_relation_axis():
    s_lr = make_scene([Group("circle", "red"), Group("square", "blue")],
                      relation="left of", seed=0)
    s_ab = make_scene([Group("circle", "red"), Group("square", "blue")],
                      relation="above", seed=0)
    s_no = make_scene([Group("circle", "red")])
    x = torch.rand(3, 3, 8, 8)
    m = cd.mirrored(x, [s_lr, s_no, s_ab])
    assert m.shape == (2, 3, 8, 8)
    assert torch.equal(m[0], x[0].flip(-1))
    assert torch.equal(m[1], x[2].flip(-2))
    assert cd.mirrored(x[1:2], [s_no]).shape == (0, 3, 8, 8)


def test_mirror_scene_reflects_centres_and_flips_the_relation():
    s = make_scene([Group("circle", "red"), Group("square", "blue")],
                   relation="left of", seed=0)
    m = cd.mirror_scene(s)
    assert m.relation == "right of"
    for a, b in zip(s.objects, m.objects):
        assert b.cx == pytest.approx(1 - a.cx) and b.cy == a.cy
    v = make_scene([Group("circle", "red"), Group("star", "blue")],
                   relation="above", seed=1)
    assert [o.cy for o in cd.mirror_scene(v).objects] == pytest.approx(
        [1 - o.cy for o in v.objects])
    back = cd.mirror_scene(m)
    assert back.relation == s.relation
    assert [o.cx for o in back.objects] == pytest.approx(
        [o.cx for o in s.objects])
