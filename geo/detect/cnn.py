"""Compact Siamese U-Net for RGB VHR building masks and building change, in numpy (pure).

The network (:data:`WIDTHS` channels at 1, 1/2, 1/4 and 1/8 resolution) has one
encoder shared by both dates, a per-date building decoder and a change decoder
on the absolute differences of the two dates' encoder features. It works on a
fixed ground sampling distance, :data:`GSD_M` = 0.5 m: inputs on another grid
are resampled to it and the probabilities back. Grids coarser than
:data:`MAX_RES_M` (Sentinel-2 10 m) are refused: a 0.5 m building model says
nothing about them.

The weights (``geo/detect/cnn.npz``) were trained by ``benchmarks/train_cnn.py``
(PyTorch, CPU, seeded) on ``../shared/data`` alone. The file holds the shipped
model (``all``: every training source) and one model per leave-out fold, each
with the list of datasets it was trained on, so that ``factorywatch benchmark
-m cnn`` scores a dataset only with a model that never saw it
(:func:`pick_model`). Inference needs numpy and scipy only; memory is bounded by
the tile (:data:`TILE_PX` plus a :data:`HALO_PX` halo), and tiled output equals
untiled output.

Reading the packaged ``.npz`` is the only I/O here (package data, not user files).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from geo.config import DetectParams
from geo.detect.common import (
    BuildingMask,
    BuildingThresholds,
    ChangeMap,
    change_map_from_probability,
    cleanup_mask,
    opening_radius_px,
)
from geo.detect.weights import packaged_weights
from geo.errors import BandError, ConfigError
from geo.geoarray import GeoArray

__all__ = [
    "GSD_M",
    "HALO_PX",
    "LAYERS",
    "MAX_RES_M",
    "TILE_PX",
    "WIDTHS",
    "CnnModel",
    "cnn_building_mask",
    "cnn_building_probability",
    "cnn_change_method",
    "cnn_change_probability",
    "cnn_thresholds",
    "dataset_key",
    "forward",
    "held_out",
    "load_cnn_models",
    "pick_model",
    "resample",
    "rgb01",
]

log = logging.getLogger(__name__)

WIDTHS: tuple[int, int, int, int] = (8, 16, 32, 64)
"""Channels at full, 1/2, 1/4 and 1/8 resolution."""
GSD_M = 0.5
"""Pixel size the model is trained and run at (m)."""
MAX_RES_M = 2.0
"""Coarsest input grid accepted (m): a 10 m Sentinel-2 pixel holds a whole house."""
TILE_PX = 512
"""Output tile side at :data:`GSD_M` (a multiple of 8)."""
HALO_PX = 64
"""Context kept on each side of a tile (>= the receptive-field radius, a multiple of 8)."""
THRESHOLD = 0.5
"""Probability threshold of both heads of a model packed without calibrated thresholds."""
_WEIGHTS = "cnn.npz"


def _layers() -> tuple[tuple[str, int, int, int], ...]:
    c1, c2, c3, c4 = WIDTHS
    enc = [("e1a", 3, c1), ("e1b", c1, c1), ("e2a", c1, c2), ("e2b", c2, c2),
           ("e3a", c2, c3), ("e3b", c3, c3), ("e4a", c3, c4), ("e4b", c4, c4)]
    out = [(n, i, o, 3) for n, i, o in enc]
    for h in ("b", "c"):
        out += [(f"{h}3", c4 + c3, c3, 3), (f"{h}2", c3 + c2, c2, 3), (f"{h}1", c2 + c1, c1, 3),
                (f"{h}o", c1, 1, 1)]
    return tuple(out)


LAYERS: tuple[tuple[str, int, int, int], ...] = _layers()
"""``(name, in_channels, out_channels, kernel)`` of every convolution; ``b*`` building
decoder, ``c*`` change decoder, ``e*`` shared encoder."""


@dataclass(frozen=True, kw_only=True)
class CnnModel:
    """One trained network: weights per layer and the datasets it was trained on."""

    name: str
    weights: dict[str, tuple[NDArray[np.float32], NDArray[np.float32]]]
    """``layer -> (w (out, in, k, k), bias (out,))``."""
    trained_on: tuple[str, ...]
    change_threshold: float = 0.5
    """Probability threshold of the change head, chosen on the model's own training sources
    (``benchmarks/train_cnn.py``: the best mean per-dataset F1), never on a held-out set."""
    building_threshold: float = 0.5
    """The same for the building head (mean per-dataset IoU)."""


# ------------------------------------------------------------ numpy network


def _conv(x: NDArray[np.float32], wb: tuple[NDArray[np.float32], NDArray[np.float32]],
          relu: bool = True) -> NDArray[np.float32]:
    """Same-size convolution (zero padding) as k*k shifted matrix products (im2col-free)."""
    w, b = wb
    o, c, k, _ = w.shape
    _, h, wd = x.shape
    r = k // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r))) if r else x
    out = np.empty((o, h * wd), np.float32)
    out[:] = b[:, None]
    for i in range(k):
        for j in range(k):
            out += w[:, :, i, j] @ xp[:, i:i + h, j:j + wd].reshape(c, -1)
    y = out.reshape(o, h, wd)
    return np.maximum(y, 0, out=y) if relu else y


def _pool(x: NDArray[np.float32]) -> NDArray[np.float32]:
    c, h, w = x.shape
    out: NDArray[np.float32] = x.reshape(c, h // 2, 2, w // 2, 2).max((2, 4))
    return out


def _up(x: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = x.repeat(2, axis=1).repeat(2, axis=2)
    return out


def _encode(m: CnnModel, x: NDArray[np.float32]) -> list[NDArray[np.float32]]:
    feats = []
    for lvl in range(4):
        if lvl:
            x = _pool(x)
        x = _conv(_conv(x, m.weights[f"e{lvl + 1}a"]), m.weights[f"e{lvl + 1}b"])
        feats.append(x)
    return feats


def _decode(m: CnnModel, feats: list[NDArray[np.float32]], head: str) -> NDArray[np.float32]:
    x = feats[3]
    for lvl in (3, 2, 1):
        x = _conv(np.concatenate([_up(x), feats[lvl - 1]]), m.weights[f"{head}{lvl}"])
    z = _conv(x, m.weights[f"{head}o"], relu=False)[0]
    out: NDArray[np.float32] = (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)
    return out


def forward(m: CnnModel, a: NDArray[np.float32], b: NDArray[np.float32] | None = None, *,
            buildings: bool = True) -> tuple[NDArray[np.float32], ...]:
    """Run the network on ``(3, H, W)`` inputs (H, W multiples of 8; values from :func:`rgb01`).

    Returns ``(building_a,)`` for one date; for two, ``(change, building_a, building_b)``,
    or ``(change,)`` with ``buildings=False``. Probabilities 0..1.
    """
    fa = _encode(m, a)
    if b is None:
        return (_decode(m, fa, "b"),)
    fb = _encode(m, b)
    diff = [np.abs(p - q) for p, q in zip(fa, fb, strict=True)]
    if not buildings:
        return (_decode(m, diff, "c"),)
    return _decode(m, diff, "c"), _decode(m, fa, "b"), _decode(m, fb, "b")


def tiled(fn: Callable[[list[NDArray[np.float32]]], tuple[NDArray[np.float32], ...]],
          images: list[NDArray[np.float32]], *, tile: int = TILE_PX,
          halo: int = HALO_PX) -> tuple[NDArray[np.float32], ...]:
    """Apply ``fn`` tile by tile with a halo; equal to one call on the (padded) whole image.

    The images are zero-padded to a multiple of 8 plus ``halo`` on every side
    once, so every tile, interior or at the edge, sees what the whole-image call
    would see within its receptive field.
    """
    if tile % 8 or halo % 8:
        raise ValueError("tile and halo must be multiples of 8")
    _, h, w = images[0].shape
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    pad = ((0, 0), (halo, hp - h + halo), (halo, wp - w + halo))
    padded = [np.pad(x, pad) for x in images]
    outs: list[NDArray[np.float32]] | None = None
    for y0 in range(0, hp, tile):
        for x0 in range(0, wp, tile):
            y1, x1 = min(y0 + tile, hp), min(x0 + tile, wp)
            res = fn([p[:, y0:y1 + 2 * halo, x0:x1 + 2 * halo] for p in padded])
            if outs is None:
                outs = [np.zeros((hp, wp), np.float32) for _ in res]
            for o, r in zip(outs, res, strict=True):
                o[y0:y1, x0:x1] = r[halo:halo + y1 - y0, halo:halo + x1 - x0]
    assert outs is not None
    return tuple(o[:h, :w] for o in outs)


# ------------------------------------------------------------ grids and inputs


def resample(x: NDArray[np.float32], factor: float, *, order: int = 1) -> NDArray[np.float32]:
    """Zoom ``(C, H, W)`` by ``factor`` (output px per input px), anti-aliased when shrinking."""
    if abs(factor - 1.0) < 1e-6:
        return x
    if factor < 1.0:
        s = 0.5 * (1.0 / factor - 1.0)
        x = ndimage.gaussian_filter(x, (0, s, s))
    out: NDArray[np.float32] = ndimage.zoom(x, (1, factor, factor), order=order,
                                            grid_mode=True, mode="nearest").astype(np.float32)
    return out


def _gain(dates: list[GeoArray]) -> float:
    """One scale for all dates of a pair (no per-image stretch).

    1/255 for 8-bit images; else (reflectance 0..1, or 11-16-bit DN) the factor that brings
    the median brightness to 0.36, the 8-bit training tiles' median / 255 (for reflectance
    kept between 1 and 8).
    """
    vals = np.concatenate([g.data[:3, g.valid] if g.valid.any() else g.data[:3].reshape(
        min(3, g.data.shape[0]), -1) for g in dates], axis=1)
    q99 = float(np.quantile(vals, 0.99)) if vals.size else 255.0
    if 2.0 < q99 <= 255.0:
        return 1.0 / 255.0
    med = max(float(np.median(vals.mean(0))), 1e-6)
    return 0.36 / med if q99 > 255.0 else float(np.clip(0.36 / med, 1.0, 8.0))


def rgb01(ga: GeoArray, gain: float) -> NDArray[np.float32]:
    """RGB (pan repeated) times ``gain`` (see :func:`_gain`), 0 where invalid."""
    if ga.has("red", "green", "blue"):
        x = np.stack([ga.band("red"), ga.band("green"), ga.band("blue")]).astype(np.float32)
    else:
        x = np.repeat(ga.data[:1].astype(np.float32), 3, axis=0)
    out: NDArray[np.float32] = np.where(ga.valid, x * gain, 0.0).astype(np.float32)
    return out


def _check_res(ga: GeoArray) -> float:
    res = ga.grid.res_m
    if res > MAX_RES_M:
        raise BandError(
            f"{ga.source_id or ga.date}: method 'cnn' works on RGB imagery of {MAX_RES_M:g} m or "
            f"finer (trained at {GSD_M:g} m) but this grid is {res:g} m; use method 'auto' "
            "(or 'rgb-objects') for Sentinel-2/Landsat")
    return res


def _run(model: CnnModel, ims: list[NDArray[np.float32]], res_m: float,
         shape: tuple[int, int]) -> tuple[NDArray[np.float32], ...]:
    f = res_m / GSD_M
    ims = [resample(x, f) for x in ims]
    outs = tiled(lambda t: forward(model, *t, buildings=False), ims)
    if abs(f - 1.0) < 1e-6:
        return outs
    back = []
    for o in outs:
        z = ndimage.zoom(o, (shape[0] / o.shape[0], shape[1] / o.shape[1]), order=1,
                         grid_mode=True, mode="nearest")
        back.append(np.clip(z, 0, 1).astype(np.float32))
    return tuple(back)


def cnn_change_probability(a: GeoArray, b: GeoArray) -> tuple[NDArray[np.float32], float]:
    """Change probability of a co-registered RGB (or pan) VHR pair, and its threshold.

    The shipped model, or inside :func:`held_out` one that never saw that dataset.
    """
    _check_res(a)
    model = pick_model(_HELD_OUT.get())
    g = _gain([a, b])
    prob = _run(model, [rgb01(a, g), rgb01(b, g)], a.grid.res_m, a.grid.shape)[0]
    return np.where(a.valid & b.valid, prob, 0.0).astype(np.float32), model.change_threshold


def cnn_building_probability(ga: GeoArray) -> tuple[NDArray[np.float32], float]:
    """Building probability of one RGB (or pan) VHR date, and its threshold (see above)."""
    _check_res(ga)
    model = pick_model(_HELD_OUT.get())
    prob = _run(model, [rgb01(ga, _gain([ga]))], ga.grid.res_m, ga.grid.shape)[0]
    return np.where(ga.valid, prob, 0.0).astype(np.float32), model.building_threshold


# ------------------------------------------------------------ registry entries


def cnn_change_method(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    """``cnn`` change: the change head's probability over its threshold, then the cleanup."""
    prob, t = cnn_change_probability(a, b)
    return change_map_from_probability(prob, t, a, b, params=params, method="cnn")


def cnn_thresholds(params: DetectParams) -> BuildingThresholds:
    """Fixed building thresholds, so that the tiles of a scene agree.

    The model's calibrated building threshold (``params.threshold`` overrides it) and, for
    the boundary-ambiguity mask, a stricter one halfway to 1.
    """
    t = (pick_model(_HELD_OUT.get()).building_threshold if params.threshold is None
         else float(params.threshold))
    return BuildingThresholds(method="cnn", threshold=t, alt_threshold=t + 0.5 * (1.0 - t),
                              dark_threshold=-np.inf)


def cnn_building_mask(ga: GeoArray, params: DetectParams,
                      thresholds: BuildingThresholds | None = None) -> BuildingMask:
    """``cnn`` building mask: the building head's probability over the threshold, cleaned up."""
    prob, _ = cnn_building_probability(ga)
    thr = thresholds if thresholds is not None else cnn_thresholds(params)
    res_m, area = ga.grid.res_m, ga.grid.pixel_area_m2
    radius = opening_radius_px(params, res_m)
    mask, alt = (cleanup_mask(prob > t, res_m=res_m, pixel_area_m2=area, params=params,
                              valid=ga.valid, radius_px=radius)
                 for t in (thr.threshold, thr.alt_threshold))
    return BuildingMask(mask=mask, score=prob, alt_mask=alt, method="cnn",
                        threshold=thr.threshold)


# ------------------------------------------------------------ weights

_HELD_OUT: ContextVar[str | None] = ContextVar("cnn_held_out", default=None)


@contextmanager
def held_out(dataset: str | None) -> Iterator[None]:
    """Within the block, the cnn methods use a model never trained on ``dataset`` (benchmarks).

    ``dataset`` is a :func:`dataset_key` name; None (or a name no model saw) keeps
    the shipped model.
    """
    token = _HELD_OUT.set(dataset)
    try:
        yield
    finally:
        _HELD_OUT.reset(token)



@cache
def load_cnn_models() -> dict[str, CnnModel]:
    """All models in the packaged ``cnn.npz``, by name (``all`` is the shipped one)."""
    with packaged_weights(_WEIGHTS, "benchmarks/train_cnn.py") as z:
        names = [str(n) for n in z["models"]]
        out = {}
        for n in names:
            w = {layer: (z[f"{n}/{layer}.w"].astype(np.float32),
                         z[f"{n}/{layer}.b"].astype(np.float32)) for layer, *_ in LAYERS}
            trained = tuple(str(s) for s in z[f"{n}/trained_on"])
            thr = (tuple(float(t) for t in z[f"{n}/thresholds"]) if f"{n}/thresholds" in z.files
                   else (THRESHOLD, THRESHOLD))
            out[n] = CnnModel(name=n, weights=w, trained_on=trained, change_threshold=thr[0],
                              building_threshold=thr[1])
    return out


def pick_model(exclude: str | None) -> CnnModel:
    """The shipped model, or (``exclude`` set) a fold model not trained on that dataset.

    Raises
    ------
    ConfigError
        If every packaged model saw ``exclude``.
    """
    models = load_cnn_models()
    if exclude is None or exclude not in models["all"].trained_on:
        return models["all"]
    for m in models.values():
        if exclude not in m.trained_on:
            log.debug("cnn: dataset %s scored with fold model %s", exclude, m.name)
            return m
    raise ConfigError(f"cnn: every packaged model was trained on {exclude!r}, so it cannot be "
                      "scored fairly; retrain with benchmarks/train_cnn.py --leave-out "
                      f"{exclude}")


_DATASET_DIRS = {"crops_256": "levir", "full_1024": "levir", "levir_cd": "levir",
                 "whu_cd": "whu", "dsifn_cd": "dsifn", "egy_bcd": "egy",
                 "sztaki_airchange": "sztaki", "sn1_rio": "spacenet", "sn4_atlanta": "spacenet",
                 "open_cities_ai": "opencities", "xbd": "xbd"}


def dataset_key(path: str | Path) -> str | None:
    """Training-source name of a shared-data folder (``../shared/data`` layout), else None.

    Examples
    --------
    >>> dataset_key("/work/shared/data/levir_cd/crops_256"), dataset_key("/tmp/mine")
    ('levir', None)
    """
    for part in reversed(Path(path).resolve().parts):
        if part in _DATASET_DIRS:
            return _DATASET_DIRS[part]
    return None
