"""Change-detection benchmark on LEVIR-CD-like folders (I/O + scoring).

A dataset folder holds ``A/`` (before), ``B/`` (after) and ``label/`` with the
same file names (PNG or GeoTIFF); a non-zero label pixel means change. Scores
follow the LEVIR-CD convention: precision, recall, F1 and IoU from the global
TP/FP/FN summed over all images, plus the same per image. Time is the wall
time of the change method alone, per megapixel.

Reading is here; the scoring helpers (:func:`confusion`, :func:`scores`) are pure.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.errors import NotGeoreferencedWarning

from geo.config import DetectParams
from geo.errors import SourceError
from geo.geoarray import GeoArray
from geo.grid import Grid

__all__ = [
    "BenchmarkResult",
    "ImageScore",
    "confusion",
    "group_of",
    "list_triplets",
    "read_image",
    "read_label",
    "run_benchmark",
    "scores",
]

log = logging.getLogger(__name__)

_EXTS = (".png", ".tif", ".tiff", ".jpg", ".bmp")
_LOCAL_CRS = "EPSG:3857"
"""CRS label for images without georeferencing (only the pixel size is used)."""

Progress = Callable[[Iterable[Any], str], Iterator[Any]]


@dataclass(frozen=True, kw_only=True)
class ImageScore:
    """Scores of one image pair."""

    name: str
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float
    iou: float
    seconds: float
    """Wall time of the change method for this pair."""
    megapixels: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True, kw_only=True)
class BenchmarkResult:
    """Overall and per-image scores of one method on one dataset."""

    dataset: str
    method: str
    precision: float
    recall: float
    f1: float
    iou: float
    tp: int
    fp: int
    fn: int
    n_images: int
    seconds_per_megapixel: float
    per_image: list[ImageScore] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the keys of ``factorywatch benchmark --json``."""
        return {
            "dataset": self.dataset,
            "method": self.method,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "iou": self.iou,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "n_images": self.n_images,
            "seconds_per_megapixel": self.seconds_per_megapixel,
            "params": self.params,
            "per_image": [s.to_dict() for s in self.per_image],
        }


def confusion(pred: NDArray[np.bool_], truth: NDArray[np.bool_],
              valid: NDArray[np.bool_] | None = None) -> tuple[int, int, int, int]:
    """Return ``(tp, fp, fn, tn)`` of a predicted change mask against the truth (pure).

    Examples
    --------
    >>> import numpy as np
    >>> confusion(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    (1, 1, 1, 1)
    """
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and label {truth.shape} differ in shape")
    v = np.ones(pred.shape, bool) if valid is None else valid
    p, t = pred & v, truth & v
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t & v).sum())
    tn = int(v.sum()) - tp - fp - fn
    return tp, fp, fn, tn


def scores(tp: int, fp: int, fn: int) -> tuple[float, float, float, float]:
    """Return ``(precision, recall, f1, iou)``; 0 where undefined, 1 for F1/IoU if nothing to find.

    Examples
    --------
    >>> scores(8, 2, 2)
    (0.8, 0.8, 0.8, 0.6666666666666666)
    """
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    if tp + fp + fn == 0:
        return 1.0, 1.0, 1.0, 1.0
    f1 = 2 * tp / (2 * tp + fp + fn)
    iou = tp / (tp + fp + fn)
    return precision, recall, f1, iou


def group_of(name: str) -> str:
    """Image group for cross-validation: LEVIR crops belong to their 1024 image.

    ``test_7_0256_0512`` and ``test_7`` are the same group ``test_7``.

    Examples
    --------
    >>> group_of("test_7_0256_0512.png"), group_of("test_7"), group_of("000213")
    ('test_7', 'test_7', '000213')
    """
    stem = Path(name).stem
    m = re.match(r"^((?:train|val|test)_\d+)(?:_\d+_\d+)?$", stem)
    return m.group(1) if m else stem


def list_triplets(dataset_dir: str | Path) -> list[tuple[Path, Path, Path]]:
    """Find ``(A, B, label)`` file triplets with the same name.

    Raises
    ------
    SourceError
        If the folder lacks ``A/``, ``B/`` or ``label/``, or no names match.
    """
    d = Path(dataset_dir)
    for sub in ("A", "B", "label"):
        if not (d / sub).is_dir():
            raise SourceError(f"{d}: no {sub}/ folder; a benchmark dataset needs A/, B/ and "
                              "label/ with the same file names")
    out = []
    for a in sorted((d / "A").iterdir()):
        if a.suffix.lower() not in _EXTS:
            continue
        b, lab = d / "B" / a.name, d / "label" / a.name
        if b.is_file() and lab.is_file():
            out.append((a, b, lab))
        else:
            log.warning("%s: no matching B/ or label/ file, skipped", a.name)
    if not out:
        raise SourceError(f"{d}: no file name is present in all of A/, B/ and label/")
    return out


def _grid_for(src: Any, res_m: float) -> Grid:
    crs = src.crs
    if crs is not None and crs.is_projected and crs.to_epsg():
        t = src.transform
        if abs(t.b) < 1e-12 and abs(t.d) < 1e-12:
            return Grid(crs=f"EPSG:{crs.to_epsg()}", transform=t, shape=(src.height, src.width))
    return Grid(crs=_LOCAL_CRS, transform=Affine(res_m, 0, 0, 0, -res_m, 0),
                shape=(src.height, src.width))


def read_image(path: str | Path, *, res_m: float = 0.5, date: str = "") -> GeoArray:
    """Read a PNG or GeoTIFF as a :class:`GeoArray` (8-bit values stay 0..255 floats).

    Images that are not in a projected CRS get a local grid with ``res_m`` pixels.
    Three bands are RGB, four are RGB + alpha (alpha 0 = invalid), one is pan.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(path) as src:
                data = src.read().astype(np.float32)
                grid = _grid_for(src, res_m)
                nodata = src.nodata
        except rasterio.RasterioIOError as err:
            msg = " ".join(str(err).split())
            raise SourceError(f"{path}: cannot read ({msg}); pass PNG or GeoTIFF files") from None
    valid = np.ones(grid.shape, bool)
    if nodata is not None:
        valid &= ~(data == nodata).all(0)
    n = data.shape[0]
    if n == 4:
        valid &= data[3] > 0
        data = data[:3]
        n = 3
    if n == 3:
        bands: tuple[str, ...] = ("red", "green", "blue")
        kind = "rgb"
    elif n == 1:
        bands, kind = ("pan",), "pan"
    else:
        bands, kind = tuple(f"b{i + 1}" for i in range(n)), "multispectral"
    return GeoArray(data=data, valid=valid, grid=grid, date=date, bands=bands,
                    source_id=Path(path).name, kind=kind)


def read_label(path: str | Path) -> NDArray[np.bool_]:
    """Read a label raster: any non-zero value in the first band is change."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(path) as src:
                lab = src.read(1)
        except rasterio.RasterioIOError as err:
            msg = " ".join(str(err).split())
            raise SourceError(f"{path}: cannot read the label ({msg}); replace it with a "
                              "PNG or GeoTIFF mask") from None
    out: NDArray[np.bool_] = lab > 0
    return out


def run_benchmark(
    dataset_dir: str | Path,
    *,
    method: str,
    params: DetectParams | None = None,
    res_m: float = 0.5,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Score one change method on every triplet of a dataset folder.

    Parameters
    ----------
    dataset_dir : str or Path
        Folder with ``A/``, ``B/`` and ``label/``.
    method : str
        A name from :data:`geo.detect.METHODS`. ``learned`` never scores an
        image with a model trained on its group (see :func:`group_of`).
    params : DetectParams, optional
        Defaults to ``DetectParams(min_area_m2=20)``: LEVIR houses are small.
    res_m : float
        Pixel size assumed for images without a projected CRS.
    progress : callable, optional
        ``progress(items, label)`` wrapper for a progress bar.

    Returns
    -------
    BenchmarkResult
    """
    from geo.detect import change_map

    p = params or DetectParams(min_area_m2=20.0)
    triplets = list_triplets(dataset_dir)
    it: Iterable[tuple[Path, Path, Path]] = triplets
    if progress is not None:
        it = progress(triplets, f"benchmark {method}")
    per: list[ImageScore] = []
    total_s = 0.0
    total_mp = 0.0
    for a_path, b_path, l_path in it:
        a = read_image(a_path, res_m=res_m, date="A")
        b = read_image(b_path, res_m=res_m, date="B")
        truth = read_label(l_path)
        if a.bands != b.bands:
            raise SourceError(f"{b_path}: B has bands {', '.join(b.bands)} but A ({a_path.name}) "
                              f"has {', '.join(a.bands)}; A and B must have the same bands")
        if truth.shape != a.grid.shape or b.grid.shape != a.grid.shape:
            raise SourceError(f"{a_path.name}: A {a.grid.shape}, B {b.grid.shape} and label "
                              f"{truth.shape} differ in size")
        t0 = time.perf_counter()
        if method == "learned":
            from geo.detect.learned import learned_change_map

            cm = learned_change_map(a, b, params=p, exclude_group=group_of(a_path.name))
        else:
            cm = change_map(a, b, params=p, method=method)
        dt = time.perf_counter() - t0
        tp, fp, fn, tn = confusion(cm.mask, truth)
        pr, rc, f1, iou = scores(tp, fp, fn)
        mp = truth.size / 1e6
        per.append(ImageScore(name=a_path.name, tp=tp, fp=fp, fn=fn, tn=tn, precision=pr,
                              recall=rc, f1=f1, iou=iou, seconds=dt, megapixels=mp))
        total_s += dt
        total_mp += mp
        log.debug("%s: F1 %.3f (%.2f s)", a_path.name, f1, dt)
    tp = sum(s.tp for s in per)
    fp = sum(s.fp for s in per)
    fn = sum(s.fn for s in per)
    pr, rc, f1, iou = scores(tp, fp, fn)
    return BenchmarkResult(
        dataset=str(dataset_dir), method=method, precision=pr, recall=rc, f1=f1, iou=iou,
        tp=tp, fp=fp, fn=fn, n_images=len(per),
        seconds_per_megapixel=total_s / total_mp if total_mp else 0.0, per_image=per,
        params={"min_area_m2": p.min_area_m2, "opening_m": p.opening_m,
                "threshold": p.threshold, "res_m": res_m},
    )
