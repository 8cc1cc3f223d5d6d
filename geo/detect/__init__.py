"""Building masks per date and pixel change maps between dates (pure numpy/scikit-image).

One module per method family, one registry:

- :mod:`geo.detect.indices`: band math (NDVI, normalised differences, brightness, visible
  bands, excess green, texture and edges), used by every other module of ``geo``;
- :mod:`geo.detect.common`: result types, Otsu, the object cleanup, outline redrawing, the
  probability finish of a change map;
- :mod:`geo.detect.buildings`: ``builtup`` and ``rgb-objects`` building masks, scene-wide
  thresholds, :data:`BUILDING_METHODS` and :func:`building_mask`;
- :mod:`geo.detect.roofs`: ``contrast-objects`` (roofs that rise above their surroundings, the
  3-30 m default);
- :mod:`geo.detect.change`: ``imad``, ``cva``, ``index-diff``, ``pcc`` and ``rgb-objects``
  change, with the shared finish (shadow/season pixels dropped, cleanup);
- :mod:`geo.detect.learned`: the per-pixel perceptron (``learned``), its features and its
  packaged weights ``change_mlp.npz`` (``benchmarks/train_change_mlp.py``);
- :mod:`geo.detect.registry`: :data:`CHANGE_METHODS`, :data:`AUTO_CHANGE` and
  :func:`change_map`;
- :mod:`geo.detect.tiled`: the pipeline's tile-by-tile detect stage (I/O glue; import it as
  ``geo.detect.tiled``, it is not re-exported here).

Per-date building masks (:func:`building_mask`):

- ``builtup`` (multispectral with NIR): a built-up index (NDBI - NDVI when
  SWIR is present, else -NDVI), Otsu threshold.
- ``contrast-objects`` (any imagery at 2.5 m and coarser): roofs that rise above their
  immediate surroundings with a sharp, rectangular edge; outlines redrawn at the
  roof/background midpoint.
- ``rgb-objects`` (RGB or panchromatic VHR, 0.3-2 m): bright, homogeneous,
  non-vegetated, non-shadow objects; narrow objects (roads) are removed with an
  opening whose radius follows the grid resolution, and edges are then restored
  from the unopened mask so that corners and areas stay exact.

Change maps (:func:`change_map`, :data:`METHODS`): ``imad``, ``cva``, ``index-diff``, ``pcc``,
``rgb-objects``, ``learned`` and ``auto`` (the best measured method for the imagery kind,
:data:`AUTO_CHANGE`). Every change mask then gets the same object-level cleanup: pixels that
look like shadow in one date or vegetation in both (seasonal change) are dropped, then a
morphological opening and a minimum area in m² (``DetectParams``).

Adding a method
---------------
1. Add its name to the ``Literal`` in :mod:`geo.types` (``BuildingMethod`` or
   ``ChangeMethod``; and ``DetectMethod`` so that ``[detect]`` accepts it). That is the one
   vocabulary: the CLI choices and the config check follow from it.
2. Write one module ``geo/detect/<name>.py`` with a function of the registry's signature,
   :data:`geo.detect.common.ChangeMethodFn` ``(a, b, params) -> ChangeMap`` or
   :data:`geo.detect.common.BuildingMethodFn` ``(ga, params, thresholds) -> BuildingMask``.
   It imports only :mod:`~geo.detect.common`, :mod:`~geo.detect.indices` (and, for a change
   method, :mod:`~geo.detect.buildings`), never the registry.
3. Add one entry to :data:`CHANGE_METHODS` (:mod:`geo.detect.registry`) or
   :data:`BUILDING_METHODS` (:mod:`geo.detect.buildings`). ``tests/test_detect.py`` checks
   that the registry keys equal the ``Literal``'s names.
"""

from __future__ import annotations

from geo.detect.buildings import (
    AUTO_BUILDING,
    BUILDING_METHODS,
    CONTRAST_MIN_RES_M,
    building_mask,
    building_method,
    building_score,
    thresholds_from_scores,
)
from geo.detect.common import (
    BuildingMask,
    BuildingThresholds,
    ChangeMap,
    change_map_from_probability,
    cleanup_mask,
    otsu_threshold,
)
from geo.detect.registry import AUTO_CHANGE, CHANGE_METHODS, METHODS, change_map

__all__ = [
    "AUTO_BUILDING",
    "AUTO_CHANGE",
    "BUILDING_METHODS",
    "CHANGE_METHODS",
    "CONTRAST_MIN_RES_M",
    "METHODS",
    "BuildingMask",
    "BuildingThresholds",
    "ChangeMap",
    "building_mask",
    "building_method",
    "building_score",
    "change_map",
    "change_map_from_probability",
    "cleanup_mask",
    "otsu_threshold",
    "thresholds_from_scores",
]
