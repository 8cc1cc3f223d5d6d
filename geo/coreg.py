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


MIN_CHECKED_SHIFT_PX = 0.0
"""Shifts larger than this many pixels are applied only if they improve the agreement.

Zero: every shift is checked. Sub-pixel and 1-2 px peaks of noise on a featureless patch
(a 30 × 30 px field around one hall) are as wrong as large ones and used to be applied."""
MIN_NCC_GAIN = 0.01
"""A checked shift must raise the correlation with the reference by more than this; a shift
estimated on featureless or changed ground (a peak of noise) does not, and is refused rather
than applied (a wrong shift moves every outline: confidently wrong areas and dates)."""
RELATED_NCC = 0.3
"""Two dates whose brightness already correlates this well share structure (roofs, roads), so
a phase-correlation peak under :data:`SMALL_SHIFT_PX` comes from it: such a shift needs only to
raise the correlation by :data:`MIN_NCC_GAIN` (a real 1.1 px shift on a changed scene gains
about 0.02, below the chance bound). Featureless stacks correlate at |r| < 0.1 and still face
the chance bound."""
SMALL_SHIFT_PX = 2.0
"""See :data:`RELATED_NCC`."""


def _tukey(m: int, alpha: float) -> NDArray[np.float64]:
    """The symmetric Tukey (tapered cosine) window of ``m`` points.

    ``scipy.signal.windows.tukey``'s formula, written out so that co-registration does not
    import scipy.signal (0.6 s a process).
    """
    if m <= 1:
        return np.ones(max(m, 0))
    if alpha <= 0:
        return np.ones(m)
    if alpha >= 1.0:
        return 0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, m))
    n = np.arange(m, dtype=np.float64)
    width = int(np.floor(alpha * (m - 1) / 2.0))
    w = np.ones(m)
    n1, n3 = n[: width + 1], n[m - width - 1:]
    w[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * n1 / alpha / (m - 1))))
    w[m - width - 1:] = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * n3 / alpha / (m - 1))))
    return w


def _ncc(a: NDArray[np.float32], b: NDArray[np.float32], valid: NDArray[np.bool_]) -> float:
    """Pearson correlation of two images over ``valid`` (NaN with fewer than 2 pixels)."""
    x, y = a[valid].astype(np.float64), b[valid].astype(np.float64)
    if x.size < 2 or not (x.std() > 0 and y.std() > 0):
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _lossless_shift(img: NDArray[np.float32], valid: NDArray[np.bool_], dy: float, dx: float
                    ) -> NDArray[np.float32]:
    """``img`` moved by ``(dy, dx)`` in the Fourier domain (invalid pixels filled first).

    For judging a shift: bilinear resampling smooths the noise away at fractional shifts, so
    any sub-pixel shift of a noisy featureless image would seem to raise the correlation; a
    Fourier shift keeps the spectrum.
    """
    fill = float(img[valid].mean()) if valid.any() else 0.0
    src = np.where(valid & np.isfinite(img), img, fill).astype(np.float64)
    out = np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(src), (dy, dx))).real
    return out.astype(np.float32)


def _prepare(img: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float64]:
    out = img.astype(np.float64)
    fill = float(out[valid].mean()) if valid.any() else 0.0
    out = np.where(valid & np.isfinite(out), out, fill)
    out = out - fill
    win = np.outer(_tukey(out.shape[0], 0.25), _tukey(out.shape[1], 0.25))
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

    Notes
    -----
    Every non-zero shift is applied only if it raises the correlation with the reference
    (``mov`` moved losslessly, by Fourier shift) by more than unrelated images reach by chance
    (``2·sqrt(2 ln n / n)``, n valid pixels) or halves the misfit ``1 − correlation``. A
    sub-pixel shift that does not is left out with ``ok`` True, no shift and the estimate as
    ``residual_px`` (the doubt left); a larger one is refused with ``ok`` False.
    """
    check_same_grid(ref.grid, mov.grid,
                    what=f"{mov.source_id or mov.date} vs {ref.source_id or ref.date}")
    a = brightness(ref)
    valid = ref.valid & mov.valid
    est = estimate_shift(a, brightness(mov), valid=valid)
    name = mov.source_id or mov.date
    if not est.ok:
        log.warning("co-registration of %s to %s failed (too little valid overlap)",
                    name, ref.source_id or ref.date)
        return mov, est
    moved = apply_shift(mov, est.dy_px, est.dx_px)
    if est.magnitude_px > MIN_CHECKED_SHIFT_PX:
        before, after, significant = _significance(a, mov, valid & moved.valid, est)
        if not significant:
            if est.magnitude_px < 1.0:  # a sub-pixel peak of noise: leave the image, say so
                log.info("co-registration of %s: a %.2f px shift is not significant; "
                         "not applied", name, est.magnitude_px)
                return mov, Shift(dy_px=0.0, dx_px=0.0, error=est.error,
                                  residual_px=est.magnitude_px, ok=True)
            log.warning("co-registration of %s: a shift of %.2f px does not improve agreement "
                        "with the reference (correlation %.3f -> %.3f); not applied",
                        name, est.magnitude_px, before, after)
            return mov, Shift(dy_px=est.dy_px, dx_px=est.dx_px, error=est.error,
                              residual_px=float("nan"), ok=False)
    if est.magnitude_px > max_shift_px:  # a real misalignment beyond the limit
        log.warning("co-registration of %s: shift %.2f px above max_shift_px=%.1f; not applied",
                    name, est.magnitude_px, max_shift_px)
        return mov, Shift(dy_px=est.dy_px, dx_px=est.dx_px, error=est.error,
                          residual_px=est.magnitude_px, ok=False)
    again = estimate_shift(a, brightness(moved), valid=valid & moved.valid)
    residual = again.magnitude_px if again.ok else float("nan")
    log.info("co-registration of %s: shift (%.2f, %.2f) px, residual %.2f px",
             name, est.dy_px, est.dx_px, residual)
    return moved, Shift(dy_px=est.dy_px, dx_px=est.dx_px, error=est.error,
                        residual_px=residual, ok=True)


def _significance(a: NDArray[np.float32], mov: GeoArray, both: NDArray[np.bool_], est: Shift
                  ) -> tuple[float, float, bool]:
    """Correlation with the reference before and after the shift, and whether it is real.

    Real: the (lossless) shift raises the correlation by more than unrelated images reach by
    chance at some shift (~ sqrt(2 ln n / n), n pixels), or halves the misfit 1 − r; for dates
    that already agree (:data:`RELATED_NCC`) a shift under :data:`SMALL_SHIFT_PX` needs only
    to raise the correlation.
    """
    before = _ncc(a, brightness(mov), both)
    after = _ncc(a, _lossless_shift(brightness(mov), mov.valid, est.dy_px, est.dx_px), both)
    if before >= RELATED_NCC and est.magnitude_px < SMALL_SHIFT_PX:
        return before, after, bool(after > before + MIN_NCC_GAIN)
    n = max(int(both.sum()), 2)
    chance = math.sqrt(2.0 * math.log(n) / n)
    gain = after > before + max(MIN_NCC_GAIN, 2.0 * chance) or (1 - after) < 0.5 * (1 - before)
    return before, after, bool(gain and after > 3.0 * chance)
