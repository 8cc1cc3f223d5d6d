"""Small learned change model for RGB VHR pairs: features, MLP inference, weights (pure).

The model is a two-hidden-layer perceptron (about 2,000 weights) on per-pixel
multi-scale colour, texture and edge features of the pair. It was trained only
on the shared LEVIR-CD samples by ``benchmarks/train_change_mlp.py``
(deterministic: fixed seeds). ``change_mlp.npz`` holds one model trained on all
training groups plus one per cross-validation fold (leave one image group
out), each with the list of groups it was trained on, so the benchmark never
scores an image with a model that saw it (:func:`learned_change_map`).

Reading the packaged ``.npz`` (``geo/detect/change_mlp.npz``) is the only I/O here (package
data, not user files).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from geo.config import DetectParams
from geo.detect.common import ChangeMap, change_map_from_probability
from geo.detect.indices import excess_green_soft, sobel_magnitude, visible
from geo.detect.weights import packaged_weights
from geo.geoarray import GeoArray

__all__ = [
    "FEATURE_NAMES",
    "MlpModel",
    "learned_change",
    "learned_change_map",
    "learned_change_method",
    "load_models",
    "pair_features",
]

log = logging.getLogger(__name__)

_WEIGHTS = "change_mlp.npz"
_SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Gaussian scales in metres for the multi-scale features."""


def _names() -> tuple[str, ...]:
    n: list[str] = []
    for s in _SIGMAS:
        n += [f"dcol_s{s:g}", f"dbri_s{s:g}", f"abri_s{s:g}", f"bbri_s{s:g}",
              f"astd_s{s:g}", f"bstd_s{s:g}", f"dstd_s{s:g}"]
    n += ["aexg", "bexg", "dexg", "agrad", "bgrad", "dgrad", "asat", "bsat", "bval", "aval",
          "dchroma"]
    return tuple(n)


FEATURE_NAMES: tuple[str, ...] = _names()


_DISPLAY_MEDIAN = 0.36
"""Median brightness of the 8-bit training tiles / 255 (LEVIR-CD, WHU, DSIFN: 0.33-0.43)."""
EIGHT_BIT_Q99 = 2.0
"""A pair whose 99th percentile exceeds this is 8-bit DN (divided by 255), else reflectance."""
MAX_GAIN = 8.0
"""Largest gain that brings dark reflectance to the training tiles' median brightness."""
SMOOTH_FEATURES_M = 1.0
"""Smoothing, metres, of the colour, edge and saturation features."""
MIN_SIGMA_PX = 0.5
"""Smallest Gaussian scale in pixels (coarse grids)."""


def _pair01(a: GeoArray, b: GeoArray) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Both dates on the training scale, with ONE factor for the pair (no per-image stretch).

    8-bit images (values above 2) are divided by 255, as in training. Reflectance
    (0..1, much darker than 8-bit display images) gets a single gain that brings the
    pair's median brightness to that of the training tiles.
    """
    ra, rb = visible(a), visible(b)
    v = a.valid & b.valid
    both = np.concatenate([ra[:, v], rb[:, v]], axis=1) if v.any() else ra.reshape(3, -1)
    if both.size and float(np.quantile(both, 0.99)) > EIGHT_BIT_Q99:
        # divide (not multiply by 1/255): bit-identical to the training features
        return (ra / 255.0).astype(np.float32), (rb / 255.0).astype(np.float32)
    med = float(np.median(both.mean(0))) if both.size else _DISPLAY_MEDIAN
    gain = float(np.clip(_DISPLAY_MEDIAN / max(med, 1e-6), 1.0, MAX_GAIN))
    return (ra * gain).astype(np.float32), (rb * gain).astype(np.float32)


def pair_features(a: GeoArray, b: GeoArray) -> NDArray[np.float32]:
    """Per-pixel features of a co-registered RGB pair, ``(n_features, rows, cols)``.

    Both dates are used as delivered (8-bit values / 255, or reflectance):
    nothing is stretched per image. The model is trained without per-pair
    normalisation, because iMAD no-change pixels are unreliable when most of
    a tile changes (see docs/detection.md).
    """
    ra, rb = _pair01(a, b)
    res = a.grid.res_m
    feats: list[NDArray[np.floating[Any]]] = []
    ba, bb = ra.mean(0), rb.mean(0)
    for s_m in _SIGMAS:
        s = max(s_m / res, MIN_SIGMA_PX)
        ga_ = ndimage.gaussian_filter(ra, (0, s, s))
        gb_ = ndimage.gaussian_filter(rb, (0, s, s))
        feats.append(np.sqrt(((gb_ - ga_) ** 2).sum(0)))
        sa, sb = ga_.mean(0), gb_.mean(0)
        feats += [sb - sa, sa, sb]
        va = np.sqrt(np.maximum(ndimage.gaussian_filter(ba * ba, s) - sa * sa, 0))
        vb = np.sqrt(np.maximum(ndimage.gaussian_filter(bb * bb, s) - sb * sb, 0))
        feats += [va, vb, vb - va]
    sm = max(SMOOTH_FEATURES_M / res, MIN_SIGMA_PX)
    ra_s = ndimage.gaussian_filter(ra, (0, sm, sm))
    rb_s = ndimage.gaussian_filter(rb, (0, sm, sm))
    ea, eb = excess_green_soft(ra_s), excess_green_soft(rb_s)
    gra, grb = sobel_magnitude(ra_s.mean(0)), sobel_magnitude(rb_s.mean(0))
    sat_a = ra_s.max(0) - ra_s.min(0)
    sat_b = rb_s.max(0) - rb_s.min(0)
    ca = ra_s / (ra_s.sum(0) + 1e-3)
    cb = rb_s / (rb_s.sum(0) + 1e-3)
    feats += [ea, eb, eb - ea, gra, grb, grb - gra, sat_a, sat_b, rb_s.max(0), ra_s.max(0),
              np.abs(cb - ca).sum(0)]
    out: NDArray[np.float32] = np.stack(feats).astype(np.float32)
    return out


@dataclass(frozen=True, kw_only=True)
class MlpModel:
    """A standardised-input MLP with ReLU hidden layers and a sigmoid output."""

    mean: NDArray[np.float32]
    std: NDArray[np.float32]
    weights: tuple[NDArray[np.float32], ...]
    biases: tuple[NDArray[np.float32], ...]
    threshold: float
    """Probability threshold chosen on the training groups (max F1)."""
    smooth_m: float
    """Gaussian smoothing of the probability before thresholding, in metres."""
    trained_on: tuple[str, ...]
    """Image groups in the training set."""

    def predict(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Probabilities for ``(n, n_features)`` samples."""
        h = (x - self.mean) / self.std
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        z = h @ self.weights[-1] + self.biases[-1]
        out = np.asarray((1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).ravel(), dtype=np.float32)
        return out

    def to_arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        """Flatten into named arrays for ``np.savez``."""
        d: dict[str, NDArray[Any]] = {
            f"{prefix}/mean": self.mean, f"{prefix}/std": self.std,
            f"{prefix}/threshold": np.array(self.threshold),
            f"{prefix}/smooth_m": np.array(self.smooth_m),
            f"{prefix}/trained_on": np.array(self.trained_on),
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            d[f"{prefix}/w{i}"] = w
            d[f"{prefix}/b{i}"] = b
        return d


def _from_arrays(z: np.lib.npyio.NpzFile, prefix: str) -> MlpModel:
    n = sum(1 for k in z.files if k.startswith(f"{prefix}/w"))
    return MlpModel(
        mean=z[f"{prefix}/mean"], std=z[f"{prefix}/std"],
        weights=tuple(z[f"{prefix}/w{i}"] for i in range(n)),
        biases=tuple(z[f"{prefix}/b{i}"] for i in range(n)),
        threshold=float(z[f"{prefix}/threshold"]), smooth_m=float(z[f"{prefix}/smooth_m"]),
        trained_on=tuple(str(s) for s in z[f"{prefix}/trained_on"]),
    )


@cache
def load_models() -> dict[str, MlpModel]:
    """The packaged models: ``all`` plus one per cross-validation fold (``fold:<group>``)."""
    with packaged_weights(_WEIGHTS, "benchmarks/train_change_mlp.py") as z:
        prefixes = sorted({k.split("/")[0] for k in z.files})
        return {p: _from_arrays(z, p) for p in prefixes}


def _pick(exclude_group: str | None) -> MlpModel:
    models = load_models()
    if exclude_group is None or exclude_group not in models["all"].trained_on:
        return models["all"]
    for name, m in models.items():
        if name != "all" and exclude_group not in m.trained_on:
            log.debug("learned: %s scored with model %s", exclude_group, name)
            return m
    raise KeyError(f"no packaged model excludes group {exclude_group!r}")


def learned_change(a: GeoArray, b: GeoArray, *, exclude_group: str | None = None) -> tuple[
        NDArray[np.float32], float]:
    """Change probability (smoothed) from the learned model, and its threshold.

    Parameters
    ----------
    a, b : GeoArray
        Co-registered RGB dates, as delivered (no per-pair normalisation).
    exclude_group : str, optional
        Use a model that was not trained on this image group.
    """
    model = _pick(exclude_group)
    f = pair_features(a, b)
    x = f.reshape(f.shape[0], -1).T
    prob = model.predict(x).reshape(a.grid.shape)
    if model.smooth_m > 0:
        prob = ndimage.gaussian_filter(prob, model.smooth_m / a.grid.res_m)
    prob = np.where(a.valid & b.valid, prob, 0.0).astype(np.float32)
    return prob, model.threshold


def learned_change_map(a: GeoArray, b: GeoArray, *, params: DetectParams,
                       exclude_group: str | None = None) -> ChangeMap:
    """:func:`geo.detect.change_map` with ``method="learned"``, choosing the CV fold model."""
    prob, t = learned_change(a, b, exclude_group=exclude_group)
    return change_map_from_probability(prob, t, a, b, params=params, method="learned")


def learned_change_method(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    """``learned``: the packaged model trained on all groups (the registry entry)."""
    return learned_change_map(a, b, params=params)
