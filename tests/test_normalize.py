from __future__ import annotations

import numpy as np
from _detect_scenes import rgb_pair

from geo.normalize import imad, normalize_to, orthogonal_fit


def test_normalisation_removes_known_gain_and_offset() -> None:
    a, b, truth = rgb_pair(gain=1.3, offset=-0.04, noise=0.005)
    out, info = normalize_to(a, b)
    for g, o in zip(info["gains"], info["offsets"], strict=True):
        # b = 1.3 a - 0.04  ->  a = b / 1.3 + 0.04 / 1.3
        assert abs(g - 1 / 1.3) < 0.02
        assert abs(o - 0.04 / 1.3) < 0.01
    # p(no change) > 0.95 keeps about 5 % of the unchanged pixels, by construction
    assert 0.02 * truth.size < info["n_nochange"] < (~truth).sum()
    assert not (truth.ravel()[:0]).any()
    unchanged = ~truth
    err = np.abs(out.data[:, unchanged] - a.data[:, unchanged]).mean()
    assert err < 0.01


def test_imad_flags_the_change() -> None:
    a, b, truth = rgb_pair()
    res = imad(a.data, b.data, a.valid & b.valid)
    assert res.change_prob[truth].mean() > 0.95
    assert (res.change_prob[~truth] > 0.99).mean() < 0.05
    assert np.all(np.diff(res.rho) >= -1e-9)


def test_orthogonal_fit_symmetric_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 5000)
    y = 0.8 * x + 0.1
    g, o = orthogonal_fit(x + rng.normal(0, 0.02, x.size), y + rng.normal(0, 0.02, x.size))
    assert abs(g - 0.8) < 0.02 and abs(o - 0.1) < 0.01


def test_normalisation_refuses_an_implausible_fit() -> None:
    # the whole scene changed: no fit on "no-change" pixels can be trusted
    a, _, _ = rgb_pair(seed=1)
    rng = np.random.default_rng(9)
    other = rng.uniform(0.0, 0.6, a.data.shape).astype(np.float32)
    out, info = normalize_to(a, a.with_data(other))
    assert info["method"] == "identity (unreliable fit)"
    assert info["rejected"]
    assert info["gains"] == [1.0, 1.0, 1.0]
    np.testing.assert_array_equal(out.data, other)


def test_imad_whole_image_pass_in_blocks_equals_one_block(monkeypatch):
    """The block-by-block whole-image pass gives what one block gives (to a float32 unit),
    so the block size bounds memory without changing the result."""
    from scipy import ndimage

    from geo import normalize

    rng = np.random.default_rng(4)
    base = ndimage.gaussian_filter(rng.random((3, 120, 130)), (0, 2, 2)).astype(np.float32)
    x = base + 0.01 * rng.standard_normal(base.shape).astype(np.float32)
    y = 1.2 * base + 0.05 + 0.01 * rng.standard_normal(base.shape).astype(np.float32)
    y[:, 30:50, 40:70] += 0.4
    valid = np.ones((120, 130), bool)
    valid[:5] = False
    monkeypatch.setattr(normalize, "_APPLY_BLOCK_PX", 120 * 130)
    one = normalize.imad(x, y, valid)
    monkeypatch.setattr(normalize, "_APPLY_BLOCK_PX", 1000)  # 16 blocks, the last partial
    many = normalize.imad(x, y, valid)
    assert one.n_iter == many.n_iter and np.array_equal(one.rho, many.rho)
    for f in ("chi2", "change_prob", "mad"):
        np.testing.assert_array_equal(getattr(one, f), getattr(many, f))
    assert not many.change_prob[:5].any() and many.change_prob[35, 50] > 0.99
