"""Built-in shapes dataset and the user-array loader: relations, not golden numbers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from skd.data.arrays import load_arrays
from skd.data.shapes import (
    BACKGROUNDS_RGB,
    COLORS_RGB,
    MOTION_NAMES,
    make_shapes,
    motion_paths,
    shapes_split,
)


@pytest.fixture(scope="module")
def shapes32():
    return make_shapes(600, image_size=32, seq_len=8, seed=0)


def _shape_masks(data) -> np.ndarray:
    """(N, T, H, W) bool: pixels that differ from the declared background."""
    x = data.x.numpy()  # (N, T, 3, H, W)
    bg = BACKGROUNDS_RGB[data.labels["background"].numpy()]  # (N, 3)
    return (x != bg[:, None, :, None, None]).any(axis=2)


def _coverage(data) -> np.ndarray:
    """(N, T, H, W) float: shape coverage in [0, 1] read back from the anti-aliased pixels."""
    x = data.x.numpy().astype(np.float64)  # (N, T, 3, H, W)
    bg = BACKGROUNDS_RGB[data.labels["background"].numpy()].astype(np.float64)  # (N, 3)
    col = COLORS_RGB[data.labels["color"].numpy()].astype(np.float64)  # (N, 3)
    dist = np.abs(x - bg[:, None, :, None, None]).sum(axis=2)
    return dist / np.abs(col - bg).sum(axis=1)[:, None, None, None]


def _centroids(weight: np.ndarray) -> np.ndarray:
    """(N, T, H, W) weights -> (N, T, 2) centre of mass as (row, col)."""
    h, w = weight.shape[-2:]
    area = weight.sum(axis=(-2, -1))
    rows = (weight * np.arange(h)[:, None]).sum(axis=(-2, -1)) / area
    cols = (weight * np.arange(w)[None, :]).sum(axis=(-2, -1)) / area
    return np.stack([rows, cols], axis=-1)


# --------------------------------------------------------------------------- shapes


def test_shapes_layout_and_factors(shapes32):
    d = shapes32
    assert d.x.dtype == torch.uint8 and tuple(d.x.shape) == (600, 8, 3, 32, 32)
    assert d.name == "shapes" and d.is_video and d.seq_len == 8
    sizes = {f.name: (f.size, f.kind) for f in d.factors}
    assert sizes == {
        "shape": (4, "static"), "color": (6, "static"), "size": (3, "static"),
        "background": (4, "static"), "motion": (9, "dynamic"),
    }
    for f in d.factors:
        lab = d.labels[f.name]
        assert lab.dtype == torch.int64 and lab.shape == (600,)
        assert 0 <= int(lab.min()) and int(lab.max()) < f.size
        assert len(torch.unique(lab)) == f.size  # uniform draws hit every value at n=600
        assert len(f.values) == f.size
    assert len(set(MOTION_NAMES)) == 9


def test_shapes_64_and_bad_arguments():
    d = make_shapes(3, image_size=64, seq_len=5, seed=1)
    assert tuple(d.x.shape) == (3, 5, 3, 64, 64)
    with pytest.raises(ValueError, match="image_size=48"):
        make_shapes(2, image_size=48)
    with pytest.raises(ValueError, match="n=0"):
        make_shapes(0)
    with pytest.raises(ValueError, match="seq_len=1"):
        make_shapes(2, seq_len=1)


def test_shapes_deterministic_by_seed():
    a = make_shapes(20, seed=7)
    b = make_shapes(20, seed=7)
    c = make_shapes(20, seed=8)
    assert torch.equal(a.x, b.x)
    assert all(torch.equal(a.labels[k], b.labels[k]) for k in a.labels)
    assert not torch.equal(a.x, c.x)


def test_shapes_split_deterministic_and_disjoint_seeds():
    tr, te = shapes_split(30, 10, image_size=32, seq_len=6, seed=3)
    tr2, te2 = shapes_split(30, 10, image_size=32, seq_len=6, seed=3)
    assert len(tr) == 30 and len(te) == 10 and tr.seq_len == 6
    assert torch.equal(tr.x, tr2.x) and torch.equal(te.x, te2.x)
    assert not torch.equal(tr.x[:10], te.x)
    with pytest.raises(ValueError, match="n_test=0"):
        shapes_split(3, 0)


def test_colours_well_separated():
    bg = BACKGROUNDS_RGB.astype(int)
    col = COLORS_RGB.astype(int)
    assert np.abs(bg[:, None] - col[None]).max(axis=-1).min() > 100  # background vs shape
    dc = np.abs(col[:, None] - col[None]).max(axis=-1) + 1000 * np.eye(len(col), dtype=int)
    db = np.abs(bg[:, None] - bg[None]).sum(axis=-1) + 1000 * np.eye(len(bg), dtype=int)
    assert dc.min() > 60 and db.min() > 80  # L-inf between colours, L1 between backgrounds


def test_background_constant_and_shape_never_leaves_frame(shapes32):
    x = shapes32.x.numpy()
    bg = BACKGROUNDS_RGB[shapes32.labels["background"].numpy()][:, None, :]  # (N, 1, 3)
    for border in (x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]):  # (N, T, 3, S)
        assert (border == bg[..., None]).all()


def test_shape_colour_at_centre_and_size_visible(shapes32):
    mask = _shape_masks(shapes32)  # (N, T, H, W)
    assert mask.any(axis=(-2, -1)).all()  # the shape is visible in every frame
    cen = np.rint(_centroids(mask)).astype(int)  # (N, T, 2)
    x = shapes32.x.numpy()
    n, t = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    centre_rgb = x[n, t, :, cen[..., 0], cen[..., 1]]  # (N, T, 3)
    expected = COLORS_RGB[shapes32.labels["color"].numpy()][:, None, :]
    assert (centre_rgb == expected).all()
    area = mask.sum(axis=(-2, -1)).mean(axis=1)  # (N,)
    shape, size = shapes32.labels["shape"].numpy(), shapes32.labels["size"].numpy()
    for s in range(4):
        means = [area[(shape == s) & (size == z)].mean() for z in range(3)]
        assert means[0] < means[1] < means[2]


def test_motion_moves_and_only_motion_sets_the_path(shapes32):
    cen = _centroids(_coverage(shapes32))  # (N, T, 2)
    step = np.linalg.norm(np.diff(cen, axis=1), axis=-1)  # (N, T-1)
    assert (step.sum(axis=1) > 5.0).all()  # every sequence really moves
    disp = cen - cen[:, :1]  # (N, T, 2): removes the random start offset
    motion = shapes32.labels["motion"].numpy()
    means = np.stack([disp[motion == m].mean(axis=0) for m in range(9)])  # (9, T, 2)
    within = max(np.abs(disp[motion == m] - means[m]).max() for m in range(9))
    between = min(
        np.abs(means[a] - means[b]).max() for a in range(9) for b in range(9) if a != b
    )
    assert within < 0.5 < 2.0 < between  # same motion, same path; motions clearly different


def test_same_statics_different_motion_differ(shapes32):
    lab = {k: v.numpy() for k, v in shapes32.labels.items()}
    static = np.stack([lab[k] for k in ("shape", "color", "size", "background")], axis=1)
    pairs = [
        (i, j) for i in range(len(static)) for j in range(i + 1, len(static))
        if (static[i] == static[j]).all() and lab["motion"][i] != lab["motion"][j]
    ]
    assert pairs
    for i, j in pairs:
        assert not torch.equal(shapes32.x[i], shapes32.x[j])
        assert torch.equal(shapes32.x[i, :, :, 0, 0], shapes32.x[j, :, :, 0, 0])  # same background


def test_motion_paths_inside_unit_box_and_distinct():
    p = motion_paths(8)  # (9, 8, 2)
    assert p.shape == (9, 8, 2) and np.abs(p).max() <= 1.0
    flat = p.reshape(9, -1)
    d = np.abs(flat[:, None] - flat[None]).max(axis=-1) + 10 * np.eye(9)
    assert d.min() > 0.3


# --------------------------------------------------------------------------- arrays


def _video(n: int = 5, t: int = 4, c: int = 3, h: int = 6, w: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, t, c, h, w), dtype=np.uint8)


def test_load_ntchw_uint8_round_trip(tmp_path: Path):
    x = _video()
    np.save(tmp_path / "v.npy", x)
    d = load_arrays(tmp_path / "v.npy")
    assert d.x.dtype == torch.uint8 and np.array_equal(d.x.numpy(), x)
    assert d.name == "v" and d.factors == () and d.labels == {}


def test_load_nthwc_float_round_trip(tmp_path: Path):
    x = _video(c=1).astype(np.float64) / 255.0  # (N, T, 1, H, W)
    np.save(tmp_path / "v.npy", x.transpose(0, 1, 3, 4, 2))  # channels last
    d = load_arrays(tmp_path / "v.npy")
    assert d.x.dtype == torch.float32 and tuple(d.x.shape) == x.shape
    np.testing.assert_allclose(d.x.numpy(), x, atol=1e-6)


def test_load_forced_layout_and_vectors(tmp_path: Path):
    x = _video(c=3, h=3)  # (N, T, 3, 3, W)
    np.save(tmp_path / "a.npy", x.transpose(0, 1, 3, 4, 2))  # (N, T, 3, W, 3): ambiguous
    assert tuple(load_arrays(tmp_path / "a.npy").x.shape) == (5, 4, 3, 7, 3)  # auto: channels first
    forced = load_arrays(tmp_path / "a.npy", layout="nthwc")
    assert np.array_equal(forced.x.numpy(), x)
    v = np.random.default_rng(1).normal(size=(4, 9, 3))  # float64 vectors
    np.save(tmp_path / "vec.npy", v)
    d = load_arrays(tmp_path / "vec.npy", layout="ntd")
    assert d.x.dtype == torch.float32 and not d.is_video
    np.testing.assert_allclose(d.x.numpy(), v, rtol=1e-6)


def test_load_npz_with_embedded_labels(tmp_path: Path):
    x = _video(n=6, t=4)
    digit = np.array([0, 3, 1, 2, 3, 0])
    color = np.eye(4, dtype=np.int64)[[1, 0, 3, 2, 1, 0]]  # one-hot (N, K)
    scene = np.repeat(np.array([2, 0, 1, 1, 0, 2])[:, None], 4, axis=1)  # per-frame (N, T)
    style = np.eye(5)[np.repeat(np.array([4, 0, 0, 1, 2, 3])[:, None], 4, axis=1)]  # (N, T, K)
    np.savez(tmp_path / "d.npz", x=x, digit=digit, color=color, scene=scene, style=style)
    d = load_arrays(tmp_path / "d.npz")
    f = {fa.name: fa for fa in d.factors}
    assert (f["digit"].size, f["digit"].kind) == (4, "dynamic")
    assert (f["color"].size, f["color"].kind) == (4, "static")
    assert f["scene"].size == 3 and f["style"].size == 5
    assert d.labels["color"].tolist() == [1, 0, 3, 2, 1, 0]
    assert d.labels["scene"].tolist() == [2, 0, 1, 1, 0, 2]
    assert d.labels["style"].tolist() == [4, 0, 0, 1, 2, 3]
    assert np.array_equal(d.x.numpy(), x)


def test_load_npz_key_selection(tmp_path: Path):
    x = _video()
    np.savez(tmp_path / "one.npz", video=x)
    assert np.array_equal(load_arrays(tmp_path / "one.npz").x.numpy(), x)
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(ValueError, match="key="):
        load_arrays(tmp_path / "two.npz")
    np.savez(tmp_path / "lab.npz", video=x, motion=np.arange(5))
    d = load_arrays(tmp_path / "lab.npz", key="video")
    assert d.labels["motion"].tolist() == list(range(5))
    with pytest.raises(ValueError, match="nope"):
        load_arrays(tmp_path / "lab.npz", key="nope")


def test_load_separate_labels(tmp_path: Path):
    np.save(tmp_path / "x.npy", _video())
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, -1, 1]))
    d = load_arrays(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert d.factors[0].name == "label" and d.factors[0].size == 3
    assert d.labels["label"].tolist() == [0, 1, 2, -1, 1]
    np.savez(tmp_path / "l.npz", action=np.arange(5) % 2, speaker=np.eye(3)[[0, 1, 2, 0, 1]])
    d = load_arrays(tmp_path / "x.npy", labels=tmp_path / "l.npz", factor_kinds={"speaker": "dynamic"})
    kinds = {f.name: f.kind for f in d.factors}
    assert kinds == {"action": "dynamic", "speaker": "dynamic"}
    assert d.labels["speaker"].tolist() == [0, 1, 2, 0, 1]


def _bad_cases(tmp: Path) -> dict[str, tuple[Path, dict, type]]:
    """name -> (file named in the error, load_arrays kwargs, exception type)."""
    good = tmp / "good.npy"
    np.save(good, _video())
    cases: dict[str, tuple[Path, dict, type]] = {}

    def add(name, fname, data, exc=ValueError, **kw):
        p = tmp / fname
        if isinstance(data, bytes):
            p.write_bytes(data)
        elif isinstance(data, dict):
            np.savez(p, **data)
        elif data is not None:
            np.save(p, data, allow_pickle=True)
        cases[name] = (p, kw, exc)

    add("missing", "missing.npy", None, FileNotFoundError)
    add("extension", "data.txt", b"1 2 3")
    add("garbage_npy", "garbage.npy", b"\x00\x01 not numpy at all" * 20)
    add("garbage_npz", "garbage.npz", b"\x00\x01 not a zip" * 20)
    raw = good.read_bytes()
    add("truncated_npy", "trunc.npy", raw[: len(raw) // 2])
    np.savez(tmp / "full.npz", x=_video())
    add("truncated_npz", "trunc.npz", (tmp / "full.npz").read_bytes()[:300])
    add("object", "object.npy", np.array([[1, 2], [3]], dtype=object))
    add("ndim", "ndim4.npy", np.zeros((5, 4, 6, 6), np.float32))
    add("channels", "chan.npy", np.zeros((5, 4, 2, 6, 6), np.uint8))
    nan = np.random.default_rng(0).random((5, 4, 3)).astype(np.float32)
    nan[1, 2, 0] = np.nan
    add("nan", "nan.npy", nan)
    add("inf", "inf.npy", np.full((5, 4, 1, 2, 2), np.inf))
    add("short", "short.npy", np.zeros((5, 1, 3), np.float32))
    add("float_255", "f255.npy", _video().astype(np.float32))
    add("negative", "neg.npy", -np.ones((2, 3, 1, 2, 2), np.float32))
    add("label_len", "len.npy", np.arange(4))
    add("label_float", "lfloat.npy", np.arange(5) + 0.5)
    add("label_text", "ltext.npy", np.array(list("abcde")))
    add("label_changes", "lchange.npy", np.arange(20).reshape(5, 4))
    add("label_below", "lbelow.npy", np.array([0, 1, -2, 0, 1]))
    for name in ("label_len", "label_float", "label_text", "label_changes", "label_below"):
        p, _, exc = cases[name]
        cases[name] = (p, {"data": good, "labels": p}, exc)
    add("npz_bad_label", "badlab.npz", {"x": _video(), "meta": np.ones((5, 2, 2))})
    return cases


BAD = [
    "missing", "extension", "garbage_npy", "garbage_npz", "truncated_npy", "truncated_npz",
    "object", "ndim", "channels", "nan", "inf", "short", "float_255", "negative", "label_len",
    "label_float", "label_text", "label_changes", "label_below", "npz_bad_label",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_raises_one_line_naming_the_file(tmp_path: Path, case: str):
    fname, kw, exc = _bad_cases(tmp_path)[case]
    data = kw.pop("data", fname)
    with pytest.raises(exc) as info:
        load_arrays(data, **kw)
    msg = str(info.value)
    assert fname.name in msg and "\n" not in msg
    if case == "float_255":
        assert "uint8" in msg and "255" in msg
    if case == "label_len":
        assert "4" in msg and "N=5" in msg and "good.npy" in msg


def test_bad_arguments(tmp_path: Path):
    np.save(tmp_path / "x.npy", _video())
    with pytest.raises(ValueError, match="layout="):
        load_arrays(tmp_path / "x.npy", layout="nhwc")
    with pytest.raises(ValueError, match="layout='ntd'"):
        load_arrays(tmp_path / "x.npy", layout="ntd")
    np.save(tmp_path / "y.npy", np.arange(5))
    with pytest.raises(ValueError, match="factor_kinds"):
        load_arrays(tmp_path / "x.npy", labels=tmp_path / "y.npy", factor_kinds={"digit": "dynamic"})
    with pytest.raises(ValueError, match="factor_kinds"):
        load_arrays(tmp_path / "x.npy", labels=tmp_path / "y.npy", factor_kinds={"label": "moving"})
