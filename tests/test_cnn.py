"""The numpy Siamese U-Net (geo/detect/cnn.py) on its shipped weights: tiling, torch parity, LOO, wiring."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from geo.detect.cnn import (
    GSD_M,
    LAYERS,
    forward,
    held_out,
    load_cnn_models,
    pick_model,
    tiled,
)
from geo.errors import BandError, ConfigError
from geo.geoarray import GeoArray
from geo.grid import Grid

ROOT = Path(__file__).resolve().parents[1]


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _ga(data: np.ndarray, res: float) -> GeoArray:
    g = Grid(crs="EPSG:32633", transform=Affine(res, 0, 500000, 0, -res, 5000000),
             shape=data.shape[1:])
    return GeoArray(data=data, valid=np.ones(data.shape[1:], bool), grid=g, date="d",
                    bands=("red", "green", "blue"), kind="rgb")


def test_weights_small_and_complete() -> None:
    ref = resources.files("geo.detect").joinpath("cnn.npz")
    with resources.as_file(ref) as p:
        assert p.stat().st_size <= 2_000_000  # four models, float16
    models = load_cnn_models()
    assert "all" in models
    for m in models.values():
        assert set(m.weights) == {n for n, *_ in LAYERS}
        for name, cin, cout, k in LAYERS:
            assert m.weights[name][0].shape == (cout, cin, k, k)
    # every fold leaves out what its name says, and the shipped model saw every source
    for name, m in models.items():
        if name != "all":
            for left in name.removeprefix("loo-").split("-"):
                assert left not in m.trained_on
                assert left in models["all"].trained_on
    # every packed model carries thresholds chosen on its training sources (not the 0.5 default)
    with resources.as_file(ref) as p, np.load(p) as z:
        for name in models:
            assert f"{name}/thresholds" in z.files
            assert tuple(z[f"{name}/thresholds"]) == (models[name].change_threshold,
                                                       models[name].building_threshold)
            assert all(0.0 < t < 1.0 for t in z[f"{name}/thresholds"])


def test_the_methods_use_the_thresholds_of_the_model_they_run() -> None:
    from geo.config import DetectParams
    from geo.detect.cnn import cnn_building_probability, cnn_change_probability, cnn_thresholds

    a, b = _ga(_rand((3, 40, 40), 5) * 255, GSD_M), _ga(_rand((3, 40, 40), 6) * 255, GSD_M)
    for left in (None, "levir", "whu", "dsifn", "spacenet", "opencities"):
        with held_out(left):
            m = pick_model(left)
            assert cnn_change_probability(a, b)[1] == m.change_threshold
            assert cnn_building_probability(a)[1] == m.building_threshold
            assert cnn_thresholds(DetectParams()).threshold == m.building_threshold
            assert cnn_thresholds(DetectParams(threshold=0.7)).threshold == 0.7


def test_threshold_choice_prefers_the_best_mean_then_the_neutral_one() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_cnn import THRESHOLDS, pick_threshold

    peak = np.exp(-((THRESHOLDS - 0.2) / 0.1) ** 2)  # best at 0.2
    assert THRESHOLDS[pick_threshold(peak)] == pytest.approx(0.2)
    assert THRESHOLDS[pick_threshold(np.full(len(THRESHOLDS), 0.3))] == pytest.approx(0.5)
    near = np.where(THRESHOLDS == 0.45, 0.402, 0.4)  # within 0.005 of the best: keep 0.5
    assert THRESHOLDS[pick_threshold(near)] == pytest.approx(0.5)


def test_tiled_equals_untiled() -> None:
    m = load_cnn_models()["all"]
    a, b = _rand((3, 90, 75), 1), _rand((3, 90, 75), 2)
    small = tiled(lambda t: forward(m, *t), [a, b], tile=48, halo=64)
    whole = tiled(lambda t: forward(m, *t), [a, b], tile=1024, halo=64)
    for s, w in zip(small, whole, strict=True):
        assert s.shape == (90, 75)
        np.testing.assert_allclose(s, w, atol=1e-5)
    # and the halo matters: without it the tile edges differ
    cut = tiled(lambda t: forward(m, *t), [a, b], tile=48, halo=0)
    assert float(np.abs(cut[0] - whole[0]).max()) > 1e-4


def test_numpy_equals_torch() -> None:
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_cnn import build_model

    m = load_cnn_models()["all"]
    net = build_model()
    with torch.no_grad():
        for name, *_ in LAYERS:
            net.convs[name].weight.copy_(torch.from_numpy(m.weights[name][0]))
            net.convs[name].bias.copy_(torch.from_numpy(m.weights[name][1]))
        a, b = _rand((3, 64, 80), 3), _rand((3, 64, 80), 4)
        ours = forward(m, a, b)
        theirs = net(torch.from_numpy(a)[None], torch.from_numpy(b)[None])
        for o, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(o, torch.sigmoid(t)[0].numpy(), atol=1e-4)


def test_held_out_never_uses_a_model_that_saw_the_dataset() -> None:
    models = load_cnn_models()
    for name in models:
        if name == "all":
            continue
        for left in name.removeprefix("loo-").split("-"):
            assert left not in pick_model(left).trained_on
    assert pick_model(None).name == "all"
    assert pick_model("not-a-training-source").name == "all"
    with pytest.raises(ConfigError, match="retrain"):
        pick_model("xbd")  # in every model's training set: refused, not silently memorised


def test_refuses_coarse_grids() -> None:
    from geo.detect.cnn import cnn_change_probability

    ga = _ga(_rand((3, 40, 40)) * 255, 10.0)
    with pytest.raises(BandError, match=r"10 m.*'auto'"):
        cnn_change_probability(ga, ga)


def test_resamples_to_the_model_gsd() -> None:
    from geo.detect.cnn import cnn_building_probability

    img = _rand((3, 40, 40), 5) * 255
    p1, t = cnn_building_probability(_ga(img, 1.0))
    assert p1.shape == (40, 40) and 0 <= float(p1.min()) and float(p1.max()) <= 1
    assert t == load_cnn_models()["all"].building_threshold
    p05, _ = cnn_building_probability(_ga(img, GSD_M))
    assert p05.shape == (40, 40)
    assert not np.allclose(p1, p05)  # the 1 m input was run at 0.5 m, not as if it were 0.5 m


def test_change_map_and_building_mask_methods() -> None:
    from geo.config import DetectParams
    from geo.detect import building_mask, change_map

    a = _ga(_rand((3, 48, 48), 6) * 255, 0.5)
    b = _ga(_rand((3, 48, 48), 7) * 255, 0.5)
    cm = change_map(a, b, params=DetectParams(min_area_m2=0.0), method="cnn")
    assert cm.method == "cnn" and cm.mask.shape == (48, 48)
    bm = building_mask(a, DetectParams(method="cnn", min_area_m2=0.0))
    assert bm.method == "cnn"
    assert bm.alt_mask.sum() <= bm.mask.sum()  # the stricter threshold


def test_held_out_context_restores() -> None:
    from geo.detect.cnn import _HELD_OUT

    with held_out("levir"):
        assert _HELD_OUT.get() == "levir"
    assert _HELD_OUT.get() is None


@pytest.mark.parametrize(("scale", "expect_median"), [(1.0, None), (0.3 / 255, 0.36), (8.0, 0.36)])
def test_input_scale_8bit_reflectance_and_16bit(scale: float, expect_median: float | None) -> None:
    from geo.detect.cnn import _gain, rgb01

    img = _rand((3, 30, 30), 8) * 200 + 20  # 8-bit DN
    ga = _ga((img * scale).astype(np.float32), 0.5)
    x = rgb01(ga, _gain([ga]))
    if expect_median is None:
        np.testing.assert_allclose(x, img / 255, rtol=1e-5)  # 8-bit: / 255, as in training
    else:  # dark reflectance or 16-bit DN: brought to the training tiles' median
        assert float(np.median(x.mean(0))) == pytest.approx(expect_median, rel=1e-3)
