from __future__ import annotations

import numpy as np

from geo.normalize import imad, normalize_to, orthogonal_fit
from _detect_scenes import rgb_pair


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
