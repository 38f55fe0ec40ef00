"""The judge and GenEval-lite."""

import json
import re

import numpy as np
import pytest

from meissonic_lite.evaluation import (
    CATEGORIES,
    detect,
    geneval_lite,
    judge_accuracy,
    load_geneval_prompts,
    make_geneval_prompts,
    prompt_scene,
    score_detections,
    score_item,
)
from meissonic_lite.evaluation.accuracy import true_score_envelope
from meissonic_lite.evaluation.geneval import default_prompt_path
from meissonic_lite.evaluation.judge import ACCEPT_SCORE
from meissonic_lite.world import Group, make_example, make_scene, render, vocab


def test_judge_reads_a_known_scene():
    scene = make_scene([Group("star", "yellow", "large", 3),
                        Group("K", "blue", "small")], "black", seed=3)
    dets = detect(render(scene, 128))
    got = sorted((d.kind, d.color, d.size) for d in dets)
    assert got == [("K", "blue", "small")] + [("star", "yellow",
                                                "large")] * 3


def test_judge_accuracy_on_fresh_renders():
    res = judge_accuracy(150, sizes=(64, 128), seed=11, progress=False)
    for size, r in res.items():
        assert r["precision"] >= 0.97, (size, r)
        assert r["recall"] >= 0.97, (size, r)
        assert r["exact"] >= 0.93, (size, r)


def test_acceptance_threshold_keeps_true_objects():
    # fresh world images (other seeds than the ones that set the
    # threshold): every correct detection on clean renders, nearly every
    # one on heavily degraded renders, is kept
    clean = true_score_envelope(60, sizes=(128,), seed=23, p_clean=1.0,
                                progress=False)[128]
    assert clean["n"] > 100 and clean["max"] < ACCEPT_SCORE, clean
    worst = true_score_envelope(60, sizes=(64, 128), seed=24,
                                progress=False)
    for size, e in worst.items():
        assert e["n"] > 100 and e["kept"] >= 0.98, (size, e)
        assert e["p99"] < ACCEPT_SCORE, (size, e)


def test_judge_rejects_a_shape_of_no_kind():
    # a comb: a bar with three teeth, like no kind the world draws
    img = np.zeros((128, 128, 3), np.uint8)
    red = np.array(vocab.BACKGROUNDS["red"], np.uint8)
    img[40:50, 30:90] = red
    for x in (30, 55, 80):
        img[50:80, x:x + 10] = red
    (comp,) = detect(img, max_score=None)     # the component is there ...
    assert comp.color == "red" and comp.score > ACCEPT_SCORE
    assert detect(img) == []                  # ... but it is no object
    with pytest.raises(ValueError, match="max_score"):
        detect(img, max_score=0)


def test_judge_sees_nothing_on_a_blank_image():
    blank = np.full((64, 64, 3), 128, np.uint8)
    assert detect(blank) == []
    with pytest.raises(ValueError, match="RGB"):
        detect(np.zeros((64, 64)))


def test_prompt_file_is_the_generated_set():
    items = load_geneval_prompts(default_prompt_path())
    assert items == make_geneval_prompts()
    assert len(items) >= 500
    counts = {t: sum(i["tag"] == t for i in items) for t in CATEGORIES}
    assert counts == CATEGORIES
    assert len({i["prompt"] for i in items}) == len(items)


def _norm(text):
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def test_no_held_out_prompt_in_training_captions():
    held = {_norm(i["prompt"]) for i in load_geneval_prompts()}
    for i in range(1000):
        for style in ("short", "long"):
            ex = make_example(0, i, 32, caption_style=style, degrade=False)
            assert _norm(ex.caption) not in held
            assert "photo" not in ex.caption


def test_training_captions_never_use_geneval_phrasing_at_scale():
    from meissonic_lite.world.captions import caption
    from meissonic_lite.world.scene import sample_scene
    held = {_norm(i["prompt"]) for i in load_geneval_prompts()}
    rng = np.random.default_rng(0)
    for _ in range(30000):
        text = caption(sample_scene(rng), rng)
        assert _norm(text) not in held and "photo" not in text


def test_geneval_on_oracle_renders_is_near_perfect():
    items = load_geneval_prompts()[::3]
    imgs = [render(prompt_scene(it, i), 128) for i, it in enumerate(items)]
    scores = geneval_lite(imgs, items)
    assert scores["overall"] >= 0.95
    assert set(scores) == set(CATEGORIES) | {"overall"}
    # The harness path (judge once, score the detections) agrees.
    assert score_detections([detect(im) for im in imgs], items) == scores


def test_geneval_fails_wrong_images():
    items = [i for i in load_geneval_prompts() if i["tag"] == "color_attr"]
    items = items[:20]
    # Render each prompt with its colours swapped: attribution must fail.
    imgs = []
    for i, it in enumerate(items):
        a, b = it["include"]
        swapped = dict(it, include=[dict(a, color=b["color"]),
                                    dict(b, color=a["color"])])
        imgs.append(render(prompt_scene(swapped, i), 128))
    assert geneval_lite(imgs, items)["color_attr"] <= 0.2


def test_position_scoring():
    item = {"tag": "position", "prompt": "x", "relation": "left of",
            "include": [{"kind": "circle", "count": 1},
                        {"kind": "square", "count": 1}]}
    scene = make_scene([Group("circle", "red"), Group("square", "blue")],
                       "white", relation="left of", seed=1)
    assert score_item(item, detect(render(scene, 128)))
    scene = make_scene([Group("circle", "red"), Group("square", "blue")],
                       "white", relation="right of", seed=1)
    assert not score_item(item, detect(render(scene, 128)))


def test_geneval_bad_input():
    items = load_geneval_prompts()[:2]
    with pytest.raises(ValueError, match="one image per prompt"):
        geneval_lite([np.zeros((8, 8, 3), np.uint8)], items)


def test_prompt_file_is_jsonl():
    with open(default_prompt_path()) as f:
        for line in f:
            assert set(json.loads(line)) <= {"tag", "prompt", "include",
                                             "relation"}


def test_training_phrasing_and_colour_use_on_oracle_renders():
    from meissonic_lite.evaluation.t2i_eval import (
        _colour_use,
        training_phrasing,
    )
    assert training_phrasing("a photo of a red star") == "a red star."
    items = [it for it in load_geneval_prompts()
             if it["tag"] in ("colors", "color_attr")][:20]
    good = [render(prompt_scene(it, i), 128) for i, it in enumerate(items)]
    res = _colour_use(good, items)
    assert res["n_colour_prompts"] == 20
    assert res["named_colours_shown"] == 1.0
    # prompt_scene draws exactly the named groups, nothing else
    assert res["other_colours_per_image"] == 0.0
    blank = [np.full((128, 128, 3), 128, np.uint8)] * 20
    assert _colour_use(blank, items)["named_colours_shown"] == 0.0


def test_prompt_floor_separates_prompt_following_from_chance():
    """True renders of their prompts score high against them and low
    against another prompt of the same category; a prompt-blind image set
    (one image for every prompt) scores the same on both."""
    from meissonic_lite.evaluation.t2i_eval import (
        prompt_floor,
        shuffled_within_category,
    )
    items = load_geneval_prompts()[::17][:24]
    perm = shuffled_within_category(items)
    assert sorted(perm) == list(range(len(items)))
    assert all(items[perm[i]]["tag"] == it["tag"]
               for i, it in enumerate(items))
    imgs = [render(prompt_scene(it, i), 128) for i, it in enumerate(items)]
    r = prompt_floor(imgs, items)
    assert r["matched"]["overall"] > 0.8
    assert r["shuffled"]["overall"] < r["matched"]["overall"] - 0.4
    blind = prompt_floor([imgs[0]] * len(items), items)
    assert blind["matched"] == blind["shuffled"]
