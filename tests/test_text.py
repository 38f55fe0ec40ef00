"""The text encoder: shapes, penultimate states, null prompt, bad input,
saving, the contrastive loss, hard negatives, and the shipped weights."""

import dataclasses
import json
import warnings

import numpy as np
import open_clip
import pytest
import torch

from meissonic_lite.models import text
from meissonic_lite.training import clip_data as cd
from meissonic_lite.training import clip_eval as ce
from meissonic_lite.training import clip_loss as cl
from meissonic_lite.training import clip_train as ct
from meissonic_lite.world import vocab
from meissonic_lite.world.scene import Group, make_scene

TINY = text.TextEncoderConfig(embed_dim=32, text_width=32, text_layers=3,
                              text_heads=2, vision_width=32,
                              vision_layers=1, image_size=32, patch_size=8)
MANIFEST = text.WEIGHTS.with_suffix(".json")
TOL = 0.06         # held-out top-1 on 500 fresh pairs: a few std errors
BIND_TOL = 0.07    # binding on 200 fresh probes per swap kind


@pytest.fixture(scope="module")
def enc():
    return text.TextEncoder(text.build_clip(TINY), TINY)


@pytest.fixture(scope="module")
def shipped():
    return text.from_pretrained()


def test_config_builds_offline_with_full_vocab(enc):
    assert enc.clip.token_embedding.weight.shape == (49408, 32)
    assert enc.clip.context_length == 77
    assert (enc.hidden_dim, enc.pooled_dim) == (32, 32)


def test_encode_shapes_and_pooled_matches_open_clip(enc):
    prompts = ["a red circle.", "", "Two blue stars on gray."]
    h, p = enc.encode(prompts)
    assert h.shape == (3, 77, 32) and p.shape == (3, 32)
    ids = enc.tokenize(prompts)
    assert torch.allclose(p, enc.clip.encode_text(ids), atol=1e-5)
    _, p_trim = enc.text_forward(ids, trim=True)
    assert torch.allclose(p_trim, p, atol=1e-5)


def test_hidden_states_are_penultimate_block_output(enc):
    got = {}
    blocks = enc.clip.transformer.resblocks
    hook = blocks[-2].register_forward_hook(
        lambda m, i, o: got.setdefault("x", o))
    h, _ = enc.encode(["a small green letter A."])
    hook.remove()
    assert torch.equal(h, got["x"])          # before the last block + LN
    assert not torch.allclose(h, enc.clip.ln_final(h))


def test_empty_prompt_is_null_condition_and_cached(enc):
    h, p = enc.null(4)
    assert h.shape == (4, 77, 32) and p.shape == (4, 32)
    assert enc.null(1)[0].data_ptr() == h.data_ptr()       # cached
    h1, p1 = enc.encode("")
    assert torch.equal(h1[0], h[0]) and torch.equal(p1[0], p[0])


def test_long_prompt_truncated_with_warning(enc):
    long = " ".join(["red circle"] * 60)
    with pytest.warns(UserWarning, match="truncated to the context length"):
        ids = enc.tokenize(["ok", long])
    assert ids.shape == (2, 77) and int(ids[1, -1]) == ids.max()  # <eot>
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.tokenize("a red circle left of a blue square.")


@pytest.mark.parametrize("bad", [3, None, ["ok", 5], [b"bytes"]])
def test_non_string_prompts_raise(enc, bad):
    with pytest.raises(TypeError, match="str"):
        enc.encode(bad)


def test_empty_list_raises(enc):
    with pytest.raises(ValueError, match="at least one prompt"):
        enc.encode([])


def test_frozen_by_default_trainable_on_demand():
    e = text.TextEncoder(text.build_clip(TINY), TINY)
    assert not any(q.requires_grad for q in e.parameters())
    assert not e.clip.training
    e.train()
    assert not e.clip.training              # frozen stays in eval mode
    _, p = e.encode(["a red star."])
    assert not p.requires_grad
    e.set_trainable(True)
    _, p = e.encode(["a red star."])
    p.sum().backward()
    assert e.clip.token_embedding.weight.grad is not None


def test_device_and_dtype_follow_the_module():
    e = text.TextEncoder(text.build_clip(TINY), TINY).to(torch.bfloat16)
    h, p = e.encode(["a red star."])
    assert h.dtype == p.dtype == torch.bfloat16
    assert e.device.type == "cpu"
    assert e.encode_image(torch.rand(2, 3, 48, 48)).shape == (2, 32)


def test_save_load_roundtrip_stores_only_touched_rows(tmp_path):
    clip = text.build_clip(TINY)
    with torch.no_grad():
        clip.token_embedding.weight[[5, 77]] += 1.0      # "trained" rows
        clip.ln_final.weight += 0.5
    path = tmp_path / "c.safetensors"
    text.save(clip, TINY, path, dtype=torch.float32)
    sd = text.state_for_saving(clip, TINY)
    assert sd["token_embedding.rows"].tolist() == [5, 77]
    enc2 = text.from_pretrained(path)
    for k, v in clip.state_dict().items():
        assert torch.equal(v, enc2.clip.state_dict()[k]), k


def test_missing_or_corrupt_weights_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-clip"):
        text.from_pretrained(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(RuntimeError, match="train-clip"):
        text.from_pretrained(bad)


def test_clip_loss_matches_open_clip():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    scale = torch.tensor(14.3)
    ref = open_clip.ClipLoss()(torch.nn.functional.normalize(a, dim=-1),
                               torch.nn.functional.normalize(b, dim=-1),
                               scale)
    assert torch.allclose(cl.clip_loss(a, b, scale), ref, atol=1e-6)
    neg = torch.randn(8, 16, generator=g)
    assert cl.clip_loss(a, b, scale, neg) > cl.clip_loss(a, b, scale)


def test_clip_scores(enc):
    imgs = torch.rand(3, 3, 32, 32)
    s = enc.clip_score(imgs, ["a", "b", "c"])
    assert s.shape == (3,) and bool((s >= 0).all() and (s <= 100).all())
    assert torch.allclose(enc.clip_i(imgs, imgs), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="prompts"):
        enc.clip_score(imgs, ["a"])


def test_real_open_clip_architecture_builds_without_download():
    with torch.device("meta"):
        big = text.from_open_clip("ViT-H-14", pretrained=None,
                                  device="meta")
    h, p = big.encode(["a photo of a red circle", ""])
    assert h.shape == (2, 77, 1024) and p.shape == (2, 1024)
    assert big.cfg.text_layers == 24 and big.cfg.embed_dim == 1024


def test_shipped_weights_load_and_manifest_is_complete(shipped):
    m = json.loads(MANIFEST.read_text())
    for key in ("command", "config", "seed", "data", "steps",
                "wall_time_s", "final_metrics", "date", "torch"):
        assert key in m, key
    assert m["config"] == dataclasses.asdict(shipped.cfg)
    assert "train-clip" in m["command"]
    assert not any(q.requires_grad for q in shipped.parameters())


def test_shipped_weights_reach_manifest_retrieval(shipped):
    m = json.loads(MANIFEST.read_text())["final_metrics"]
    seed = cd.EVAL_SEED + 50_000                  # fresh held-out stream
    r = ce.retrieval(shipped, *cd.heldout_pairs(seed, 500))
    for k in ("t2i_top1", "i2t_top1"):
        assert r[k] >= m[k] - TOL, (k, r[k], m[k])
        assert r[k] >= 0.80, (k, r[k])


def test_shipped_weights_bind_colours_and_relations(shipped):
    # The bar: the true caption beats its colour-swapped or
    # relation-flipped twin >= 0.85 of the time, on fresh probes too.
    m = json.loads(MANIFEST.read_text())["final_metrics"]
    seed = cd.EVAL_SEED + 60_000
    got = {k: ce.binding(shipped, *cd.probe_set(seed, 200, k))
           for k in ("colors", "relation")}
    for k, b in got.items():
        assert abs(b - m[f"binding_{k}"]) <= BIND_TOL, (k, b)
        assert b >= 0.85, (k, b)


def test_train_clip_runs_resumes_and_writes_manifest(tmp_path):
    import argparse

    from meissonic_lite.cli import train_clip
    p = argparse.ArgumentParser()
    train_clip.add_parser(p.add_subparsers())
    argv = ["train-clip", "--out", str(tmp_path), "--steps", "3",
            "--batch", "8", "--n-images", "40", "--width", "32",
            "--embed-dim", "32", "--layers", "2", "--vision-layers", "1",
            "--size", "32", "--ckpt-every", "2", "--eval-every", "100",
            "--eval-pairs", "500", "--eval-probes", "30", "--no-bf16",
            "--mirror-positives"]
    args = p.parse_args(argv)
    args.command_line = "meissonic-lite " + " ".join(argv)
    ct.train(train_clip.config_from_args(args))
    args = p.parse_args(argv[:4] + ["4"] + argv[5:] + ["--resume"])
    args.command_line = "second"
    m = ct.train(train_clip.config_from_args(args))
    steps = [json.loads(x)["step"] for x in
             (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [3, 4] and m["steps"] == 4
    assert m["command"] == "meissonic-lite " + " ".join(argv) + " && second"
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["step"] == 4
    assert json.loads((tmp_path / "clip.json").read_text())["config"][
        "text_width"] == 32
    enc = text.from_pretrained(tmp_path / "clip.safetensors")
    assert enc.encode("a red star.")[0].shape == (1, 77, 32)


def test_aux_targets_name_relations_and_colour_centres():
    s = make_scene([Group("circle", "red"), Group("square", "blue")],
                   relation="below", seed=0)
    plain = make_scene([Group("star", "green", "small", 2)], seed=2)
    rel = cl.relation_labels([s, plain])
    assert cl.RELATION_CLASSES[int(rel[0])] == "below" and rel[1] == 0
    lay = cl.color_layout([plain])[0]                       # (colours, 3)
    g = cl.AUX_COLORS.index("green")
    assert lay[:, 0].tolist() == [float(i == g) for i in range(len(lay))]
    assert lay[g, 1] == pytest.approx(np.mean([o.cx for o in plain.objects]))


def test_kind_targets_and_kind_probe():
    s = make_scene([Group("circle", "red"), Group("B", "blue", count=2)],
                   seed=0)
    k = cl.kind_presence([s])[0]
    assert k.sum() == 2 and k[vocab.KINDS.index("circle")] == 1
    assert k[vocab.KINDS.index("B")] == 1
    t = cd.change_kind(s)
    assert [g.kind for g in t.groups] == ["square", "B"]
    assert [o.kind for o in t.objects].count("square") == 1
    assert [o.kind for o in t.objects].count("B") == 2
    # the next kind is skipped when the scene already has it in that colour
    u = make_scene([Group("Z", "red"), Group("A", "red")], seed=0)
    assert cd.change_kind(u).groups[0].kind == "B"
    imgs, pos, neg = cd.probe_set(cd.EVAL_SEED, 4, "kinds", 32)
    assert imgs.shape == (4, 3, 32, 32) and all(
        a != b for a, b in zip(pos, neg))


def test_aux_kind_heads_add_a_loss_and_learn():
    # Kinds carried by a small direction on a large shared one, as in
    # test_aux_heads_learn_separable_targets: the kind head must read them.
    g = torch.Generator().manual_seed(0)
    assert not hasattr(cl.AuxHeads(32), "text_kinds")
    heads = cl.AuxHeads(32, kind_weight=1.0)
    rel = torch.zeros(64, dtype=torch.long)
    lay = torch.zeros(64, len(cl.AUX_COLORS), 3)
    kinds = (torch.rand(64, 32, generator=g) < 0.2).float()
    txt = 10 + 0.05 * kinds
    img = 10 + 0.05 * torch.randn(64, 32, generator=g)
    opt = torch.optim.Adam(heads.parameters(), lr=1e-2)
    first = heads.loss(txt, rel, img, lay, kinds, kinds).item()
    for _ in range(300):
        loss = heads.loss(txt, rel, img, lay, kinds, kinds)
        opt.zero_grad()
        loss.backward()
        opt.step()
    heads.eval()
    pred = heads.text_kinds(heads.text_norm(txt)) > 0
    assert loss.item() < first
    assert (pred == kinds.bool()).float().mean() >= 0.99


def test_aux_heads_learn_separable_targets():
    # Embeddings that carry the answers along a small direction on top of
    # a large shared one (as trained CLIP embeddings do): the batch-
    # standardised heads must still learn them.
    g = torch.Generator().manual_seed(0)
    heads = cl.AuxHeads(16)
    rel = torch.randint(len(cl.RELATION_CLASSES), (64,), generator=g)
    lay = torch.rand(64, len(cl.AUX_COLORS), 3, generator=g)
    lay[..., 0] = (lay[..., 0] > 0.5).float()
    common = torch.ones(64, 16) * 10
    txt = common.clone()
    txt[:, :len(cl.RELATION_CLASSES)] += 0.05 * torch.nn.functional.one_hot(
        rel, len(cl.RELATION_CLASSES))
    img = common + 0.05 * torch.randn(64, 16, generator=g)
    opt = torch.optim.Adam(heads.parameters(), lr=1e-2)
    first = heads.loss(txt, rel, img, lay).item()
    for _ in range(200):
        loss = heads.loss(txt, rel, img, lay)
        opt.zero_grad()
        loss.backward()
        opt.step()
    heads.eval()
    acc = (heads.relation(heads.text_norm(txt)).argmax(1) == rel).float()
    assert loss.item() < first and acc.mean() == 1.0


def test_train_clip_aux_pos_scale_and_init_from(tmp_path):
    import argparse

    from meissonic_lite.cli import train_clip
    p = argparse.ArgumentParser()
    train_clip.add_parser(p.add_subparsers())
    tiny = ["--batch", "8", "--n-images", "40", "--width", "32",
            "--embed-dim", "32", "--layers", "2", "--vision-layers", "1",
            "--size", "32", "--eval-every", "100", "--eval-pairs", "500",
            "--eval-probes", "30", "--no-bf16", "--mirror-positives"]
    first = ["train-clip", "--out", str(tmp_path / "a"), "--steps", "2",
             *tiny]
    args = p.parse_args(first)
    args.command_line = "first"
    ct.train(train_clip.config_from_args(args))
    src = tmp_path / "a" / "clip.safetensors"
    base = text.from_pretrained(src)
    second = ["train-clip", "--out", str(tmp_path / "b"), "--steps", "2",
              "--aux", "1", "--aux-kinds", "0.5", "--pos-scale", "3",
              "--init-from", str(src),
              "--lr", "0", *tiny]
    args = p.parse_args(second)
    args.command_line = "second"
    m = ct.train(train_clip.config_from_args(args))
    assert m["command"] == "first && second"
    assert m["init"]["command"] == "first" and m["init"]["steps"] == 2
    assert m["data"]["aux_weight"] == 1.0 and m["data"]["pos_scale"] == 3.0
    assert m["data"]["aux_kinds_weight"] == 0.5
    assert "binding_kinds" in m["final_metrics"]
    out = text.from_pretrained(tmp_path / "b" / "clip.safetensors")
    pe = "visual.positional_embedding"
    # lr 0: weights are the source's, with the position table scaled
    assert torch.allclose(out.clip.state_dict()[pe],
                          3 * base.clip.state_dict()[pe], atol=1e-2)
    assert "aux" in torch.load(tmp_path / "b" / "ckpt.pt",
                               weights_only=False)
    third = ["train-clip", "--out", str(tmp_path / "d"), "--steps", "2",
             "--init-from", str(tmp_path / "b" / "clip.safetensors"), *tiny]
    args = p.parse_args(third)
    args.command_line = "third"
    # the chain of sources is kept
    m3 = ct.train(train_clip.config_from_args(args))
    assert m3["command"] == "first && second && third"
    assert m3["init"]["command"] == "first && second"
    assert m3["init"]["init"]["command"] == "first"
    bad = p.parse_args(["train-clip", "--out", str(tmp_path / "c"),
                        "--steps", "1", "--init-from",
                        str(tmp_path / "missing.safetensors"), *tiny])
    bad.command_line = "bad"
    with pytest.raises(FileNotFoundError, match="init-from"):
        ct.train(train_clip.config_from_args(bad))
