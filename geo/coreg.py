"""Co-registration between dates: sub-pixel phase correlation on stable areas (pure).

The shift is estimated with :func:`skimage.registration.phase_cross_correlation`
(upsampled DFT, Guizar-Sicairos et al. 2008) on a single brightness band. Pixels
that are invalid in either date are filled with the valid mean before the
transform, and a Tukey window suppresses the edge discontinuity, so that clouds
and image borders do not pull the estimate. After the shift is applied the
residual is re-estimated on the aligned pair; that residual (in pixels, times
the grid resolution for metres) is what the pipeline reports.

Conventions: arrays are ``(row, col)``; a :class:`Shift` ``(dy_px, dx_px)`` is
the translation to *apply* to ``mov`` so that it lines up with ``ref``
(``scipy.ndimage.shift(mov, (dy_px, dx_px))``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.signal.windows import tukey
from skimage.registration import phase_cross_correlation

from geo.detect.indices import brightness
from geo.geoarray import GeoArray
from geo.grid import check_same_grid

__all__ = ["Shift", "apply_shift", "brightness", "coregister", "estimate_shift"]

log = logging.getLogger(__name__)

_MIN_VALID_FRAC = 0.1
"""Below this fraction of jointly valid pixels the estimate is flagged as failed."""
_MIN_VALID_PX = 256


@dataclass(frozen=True, kw_only=True)
class Shift:
    """A translation between two dates, in pixels of the AOI grid."""

    dy_px: float
    """Rows to shift ``mov`` by so that it aligns with ``ref`` (positive = down)."""
    dx_px: float
    """Columns to shift ``mov`` by so that it aligns with ``ref`` (positive = right)."""
    error: float
    """Phase-correlation error (skimage's normalised RMS error; 0 = perfect match)."""
    residual_px: float
    """Misalignment left after applying the shift (re-estimated), in pixels."""
    ok: bool
    """False if the estimate failed, had too little stable area, or exceeded the limit."""

    @property
    def magnitude_px(self) -> float:
        """Length of the shift vector in pixels."""
        return math.hypot(self.dy_px, self.dx_px)


MIN_CHECKED_SHIFT_PX = 2.0
"""Shifts of at least this many pixels are applied only if they improve the agreement."""
MIN_NCC_GAIN = 0.01
"""A checked shift must raise the correlation with the reference by more than this; a shift
estimated on featureless or changed ground (a peak of noise) does not, and is refused rather
than applied (a wrong shift moves every outline: confidently wrong areas and dates)."""


def _ncc(a: NDArray[np.float32], b: NDArray[np.float32], valid: NDArray[np.bool_]) -> float:
    """Pearson correlation of two images over ``valid`` (NaN with fewer than 2 pixels)."""
    x, y = a[valid].astype(np.float64), b[valid].astype(np.float64)
    if x.size < 2 or not (x.std() > 0 and y.std() > 0):
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _prepare(img: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float64]:
    out = img.astype(np.float64)
    fill = float(out[valid].mean()) if valid.any() else 0.0
    out = np.where(valid & np.isfinite(out), out, fill)
    out = out - fill
    win = np.outer(tukey(out.shape[0], 0.25), tukey(out.shape[1], 0.25))
    return out * win


def estimate_shift(
    ref: NDArray[np.float32],
    mov: NDArray[np.float32],
    *,
    valid: NDArray[np.bool_] | None = None,
    upsample: int = 20,
) -> Shift:
    """Estimate the sub-pixel translation that aligns ``mov`` with ``ref``.

    Parameters
    ----------
    ref, mov : ndarray of float32, shape (rows, cols)
        Single-band images on the same grid (for example :func:`brightness`).
    valid : ndarray of bool, optional
        Stable pixels valid in both images; others are filled with the mean
        and do not drive the estimate.
    upsample : int
        Upsampling factor of the DFT: precision is ``1 / upsample`` pixel.

    Returns
    -------
    Shift
        ``residual_px`` is NaN here (it needs the shift applied; see
        :func:`coregister`). ``ok`` is False when fewer than 10 % (or 256)
        pixels are valid or the estimate is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((64, 64)).astype(np.float32)
    >>> mov = np.roll(ref, (2, -3), axis=(0, 1))
    >>> s = estimate_shift(ref, mov)
    >>> round(s.dy_px), round(s.dx_px)
    (-2, 3)
    """
    if ref.shape != mov.shape or ref.ndim != 2:
        raise ValueError(f"ref {ref.shape} and mov {mov.shape} must be 2-D and the same shape")
    v = np.ones(ref.shape, dtype=bool) if valid is None else valid.astype(bool)
    v = v & np.isfinite(ref) & np.isfinite(mov)
    n_valid = int(v.sum())
    if n_valid < max(_MIN_VALID_PX, _MIN_VALID_FRAC * v.size):
        log.debug("co-registration: only %d valid pixels, estimate skipped", n_valid)
        return Shift(dy_px=0.0, dx_px=0.0, error=float("nan"), residual_px=float("nan"), ok=False)
    a = _prepare(ref, v)
    b = _prepare(mov, v)
    if not (a.std() > 0 and b.std() > 0):
        return Shift(dy_px=0.0, dx_px=0.0, error=float("nan"), residual_px=float("nan"), ok=False)
    # plain (unwhitened) cross-correlation: dominated by high-contrast stable structure
    # (roofs, roads) rather than by noise and vegetation texture, which whitening amplifies
    shift, error, _ = phase_cross_correlation(
        a, b, upsample_factor=upsample,
                                              normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    ok = bool(np.isfinite(dy) and np.isfinite(dx))
    return Shift(dy_px=dy, dx_px=dx, error=float(error), residual_px=float("nan"), ok=ok)


def apply_shift(ga: GeoArray, dy_px: float, dx_px: float) -> GeoArray:
    """Resample every band of ``ga`` by a sub-pixel translation (bilinear).

    Parameters
    ----------
    ga : GeoArray
        The image to move. Not modified.
    dy_px, dx_px : float
        Translation in rows and columns (positive = down, right).

    Returns
    -------
    GeoArray
        Same grid; pixels moved in from outside the image, or whose bilinear
        footprint touches an invalid pixel, are invalid.
    """
    if dy_px == 0 and dx_px == 0:
        return ga.with_data(ga.data.copy(), ga.valid.copy())
    # fill invalid pixels before interpolating so NaNs/garbage do not bleed in
    data = np.empty_like(ga.data)
    for i, band in enumerate(ga.data):
        fill = float(band[ga.valid].mean()) if ga.valid.any() else 0.0
        src = np.where(ga.valid, band, fill)
        data[i] = ndimage.shift(src, (dy_px, dx_px), order=1, mode="nearest")
    vfrac = ndimage.shift(ga.valid.astype(np.float32), (dy_px, dx_px), order=1, mode="constant",
                          cval=0.0)
    valid = vfrac > 0.999
    return ga.with_data(data.astype(np.float32), valid)


def coregister(
    ref: GeoArray, mov: GeoArray, *, max_shift_px: float = 5.0
) -> tuple[GeoArray, Shift]:
    """Align ``mov`` to ``ref``: estimate, apply and re-estimate the residual.

    Parameters
    ----------
    ref, mov : GeoArray
        Two dates on the same grid.
    max_shift_px : float
        Larger estimated shifts are treated as failed: ``mov`` is returned
        unchanged and ``ok`` is False.

    Returns
    -------
    (GeoArray, Shift)
        The aligned ``mov`` and the shift applied. When ``ok`` is False the
        image is not moved and ``residual_px`` is the estimated (uncorrected)
        misalignment, NaN if even that failed.
    """
    check_same_grid(ref.grid, mov.grid,
                    what=f"{mov.source_id or mov.date} vs {ref.source_id or ref.date}")
    a = brightness(ref)
    valid = ref.valid & mov.valid
    est = estimate_shift(a, brightness(mov), valid=valid)
    if not est.ok:
        log.warning("co-registration of %s to %s failed (too little valid overlap)",
                    mov.source_id or mov.date, ref.source_id or ref.date)
        return mov, est
    if est.magnitude_px > max_shift_px:
        log.warning("co-registration of %s: shift %.2f px above max_shift_px=%.1f; not applied",
                    mov.source_id or mov.date, est.magnitude_px, max_shift_px)
        return mov, Shift(dy_px=est.dy_px, dx_px=est.dx_px, error=est.error,
                          residual_px=est.magnitude_px, ok=False)
    moved = apply_shift(mov, est.dy_px, est.dx_px)
    if est.magnitude_px >= MIN_CHECKED_SHIFT_PX:
        both = valid & moved.valid
        before, after = _ncc(a, brightness(mov), both), _ncc(a, brightness(moved), both)
        # the largest correlation two unrelated images reach at some shift: ~sqrt(2 ln n / n)
        chance = math.sqrt(2.0 * math.log(max(int(both.sum()), 2)) / max(int(both.sum()), 2))
        if not (after > before + max(MIN_NCC_GAIN, 2.0 * chance) and after > 3.0 * chance):
            log.warning("co-registration of %s: a shift of %.2f px does not improve agreement "
                        "with the reference (correlation %.3f -> %.3f); not applied",
                        mov.source_id or mov.date, est.magnitude_px, before, after)
            return mov, Shift(dy_px=est.dy_px, dx_px=est.dx_px, error=est.error,
                              residual_px=float("nan"), ok=False)
    again = estimate_shift(a, brightness(moved), valid=valid & moved.valid)
    residual = again.magnitude_px if again.ok else float("nan")
    log.info("co-registration of %s: shift (%.2f, %.2f) px, residual %.2f px",
             mov.source_id or mov.date, est.dy_px, est.dx_px, residual)
    return moved, Shift(dy_px=est.dy_px, dx_px=est.dx_px, error=est.error,
                        residual_px=residual, ok=True)
