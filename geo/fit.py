"""Sub-pixel fit of a rectangular roof to 10–30 m imagery, jointly over dates (pure).

Model
-----
On a window around a prior, each date ``d`` and band ``b`` is modelled as

``I[d, b](x, y) = a[d, b] * R(x - dx[d], y - dy[d]; θ) + c[d, b] + gx[d, b] x + gy[d, b] y``

where ``R`` is an oriented rectangle (centre, width, length, angle) convolved with an
isotropic Gaussian point-spread function of sigma ``s`` and integrated over the pixel
(approximated by adding the box variance 1/12 px² to ``s²``). Convolving a rectangle with
an isotropic Gaussian is separable in the rectangle's own frame, so ``R`` is a product of two
error-function profiles: exact, smooth and cheap.

The roof contrast ``a``, the background level ``c`` and its plane ``gx, gy`` are linear and are
solved in closed form for every trial geometry (variable projection); the geometry, the PSF
width and per-date sub-pixel shifts ``dx, dy`` (the first date fixed at 0) are fitted with
:func:`scipy.optimize.least_squares`. Residuals are weighted by each date-band's noise,
estimated from a first pass. The area's variance comes from the Gauss-Newton covariance of the
reduced problem, scaled up by the reduced chi-square when the model fits worse than the noise.
More clear dates of an unchanged building narrow the interval; the PSF width is fitted, so an
unknown blur widens it instead of biasing it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares
from scipy.special import erf

__all__ = ["Rect", "RectFit", "fit_rectangle", "rect_corners", "rect_image"]

_BOX_VAR = 1.0 / 12.0
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Rect:
    """An oriented rectangle in window pixel coordinates (x = column, y = row, centres at +0.5)."""

    cx: float
    cy: float
    w: float
    """Side along the angle, pixels."""
    length: float
    """Side across the angle, pixels."""
    angle: float
    """Radians, from the +x (column) axis towards +y (row)."""

    @property
    def area_px(self) -> float:
        """Area in pixels²."""
        return self.w * self.length


@dataclass(frozen=True, kw_only=True)
class RectFit:
    """Result of :func:`fit_rectangle`."""

    rect: Rect
    area_px: float
    area_sd_px: float
    """1-sigma area error from the fit covariance (pixels²); inf when undetermined."""
    psf_px: float
    shifts: NDArray[np.float64]
    """Per-date ``(dx, dy)`` in pixels, shape ``(n_dates, 2)``."""
    contrast_t: NDArray[np.float64]
    """Per date: the largest |roof contrast| / its standard error over the bands."""
    contrast: NDArray[np.float64]
    """Per date and band: the fitted roof contrast ``a``."""
    chi2_dof: float
    """Weighted residual sum of squares per degree of freedom (1 = fits to the noise)."""
    n_px: int
    success: bool
    at_bound: bool = False
    """A geometry parameter ended on its bound (the covariance is then not trusted)."""
    notes: tuple[str, ...] = field(default_factory=tuple)


def rect_image(rect: Rect, psf_px: float, xx: NDArray[np.float64],
               yy: NDArray[np.float64]) -> NDArray[np.float64]:
    """Fraction of each pixel's (blurred) signal that comes from the rectangle, 0..1.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:20, 0:20] + 0.5
    >>> img = rect_image(Rect(cx=10, cy=10, w=6, length=4, angle=0.3), 0.5, xx, yy)
    >>> round(float(img.sum()), 3)                 # the flux equals the area
    24.0
    """
    s = math.sqrt(max(psf_px, 1e-3) ** 2 + _BOX_VAR) * _SQRT2
    c, si = math.cos(rect.angle), math.sin(rect.angle)
    dx, dy = xx - rect.cx, yy - rect.cy
    u = dx * c + dy * si
    v = -dx * si + dy * c
    pu = 0.5 * (erf((u + rect.w / 2) / s) - erf((u - rect.w / 2) / s))
    pv = 0.5 * (erf((v + rect.length / 2) / s) - erf((v - rect.length / 2) / s))
    return np.asarray(pu * pv, dtype=np.float64)


def rect_corners(rect: Rect) -> NDArray[np.float64]:
    """The four corners ``(x, y)`` in window pixel coordinates, shape ``(4, 2)``."""
    c, s = math.cos(rect.angle), math.sin(rect.angle)
    hw, hl = rect.w / 2, rect.length / 2
    pts = [(-hw, -hl), (hw, -hl), (hw, hl), (-hw, hl)]
    return np.array([(rect.cx + u * c - v * s, rect.cy + u * s + v * c) for u, v in pts])


class _Problem:
    """Variable-projection residuals for one window over several dates."""

    def __init__(self, images: Sequence[NDArray[np.floating]], masks: Sequence[NDArray[np.bool_]],
                 fit_shifts: bool) -> None:
        h, w = masks[0].shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
        self.xx, self.yy = xx, yy
        self.masks = [np.asarray(m, bool) for m in masks]
        self.n_dates = len(images)
        self.fit_shifts = fit_shifts and self.n_dates > 1
        xs, ys = (xx - w / 2) / max(w, 1), (yy - h / 2) / max(h, 1)
        self.y: list[NDArray[np.float64]] = []
        self.q: list[NDArray[np.float64]] = []
        for img, m in zip(images, self.masks, strict=True):
            vals = np.asarray(img, np.float64)[:, m]
            bg = np.stack([np.ones(int(m.sum())), xs[m], ys[m]], axis=1)
            q, _ = np.linalg.qr(bg)
            self.q.append(q)
            self.y.append(vals - (vals @ q) @ q.T)  # background projected out
        self.weights = [np.ones((v.shape[0], 1)) for v in self.y]

    def unpack(self, p: NDArray[np.float64]) -> tuple[Rect, float, NDArray[np.float64]]:
        rect = Rect(cx=p[0], cy=p[1], w=math.exp(p[2]), length=math.exp(p[3]), angle=p[4])
        shifts = np.zeros((self.n_dates, 2))
        if self.fit_shifts:
            shifts[1:] = p[6:].reshape(-1, 2)
        return rect, math.exp(p[5]), shifts

    def solve(self, p: NDArray[np.float64]) -> tuple[list[NDArray[np.float64]],
                                                     list[NDArray[np.float64]],
                                                     list[NDArray[np.float64]]]:
        rect, psf, shifts = self.unpack(p)
        base = None if self.fit_shifts else rect_image(rect, psf, self.xx, self.yy)
        res, amp, amp_se = [], [], []
        for d in range(self.n_dates):
            if base is None:
                r = Rect(cx=rect.cx + shifts[d, 0], cy=rect.cy + shifts[d, 1], w=rect.w,
                         length=rect.length, angle=rect.angle)
                img = rect_image(r, psf, self.xx, self.yy)
            else:
                img = base
            m = self.masks[d]
            q = self.q[d]
            x = img[m]
            x = x - q @ (q.T @ x)
            xx = float(x @ x)
            a = (self.y[d] @ x) / xx if xx > 1e-12 else np.zeros(self.y[d].shape[0])
            r_db = self.y[d] - a[:, None] * x[None, :]
            res.append(r_db * self.weights[d])
            amp.append(a)
            amp_se.append(1.0 / self.weights[d][:, 0] / math.sqrt(max(xx, 1e-12)))
        return res, amp, amp_se

    def residuals(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.concatenate([r.ravel() for r in self.solve(p)[0]])

    def reweight(self, p: NDArray[np.float64]) -> None:
        res, _, _ = self.solve(p)
        for d, r in enumerate(res):
            raw = r / self.weights[d]
            mad = np.median(np.abs(raw - np.median(raw, axis=1, keepdims=True)), axis=1)
            sd = np.maximum(np.maximum(1.4826 * mad, raw.std(axis=1)), 1e-6)
            self.weights[d] = (1.0 / sd)[:, None]


def _start_and_bounds(init: Rect, psf_px: float, shape: tuple[int, int], n_shift: int,
                      max_shift_px: float) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                    NDArray[np.float64]]:
    h, w = shape
    big = math.log(2.0 * math.hypot(h, w))
    p0 = [init.cx, init.cy, math.log(max(init.w, 0.6)), math.log(max(init.length, 0.6)),
          init.angle, math.log(psf_px)]
    lo = [0.0, 0.0, math.log(0.5), math.log(0.5), init.angle - math.pi / 2, math.log(0.2)]
    hi = [float(w), float(h), big, big, init.angle + math.pi / 2, math.log(2.0)]
    p0 += [0.0] * n_shift
    lo += [-max_shift_px] * n_shift
    hi += [max_shift_px] * n_shift
    p = np.clip(np.array(p0), np.array(lo) + 1e-6, np.array(hi) - 1e-6)
    return p, np.array(lo), np.array(hi)


def fit_rectangle(
    images: Sequence[NDArray[np.floating]],
    masks: Sequence[NDArray[np.bool_]],
    init: Rect,
    *,
    psf_px: float = 0.5,
    fit_psf: bool = True,
    fit_shifts: bool = True,
    max_shift_px: float = 1.0,
) -> RectFit:
    """Fit one oriented rectangle jointly to several dates of a window.

    Parameters
    ----------
    images : sequence of ndarray, each ``(bands, rows, cols)``
        The window on each date (the same window, the same bands).
    masks : sequence of ndarray of bool, each ``(rows, cols)``
        Pixels to use on each date (valid, and not another prior's building).
    init : Rect
        Starting geometry (from the prior), window pixel coordinates.
    psf_px : float
        Starting (or, with ``fit_psf=False``, fixed) PSF sigma in pixels.
    fit_psf : bool
        Fit the PSF width (recommended: the blur is never known exactly).
    fit_shifts : bool
        Fit a sub-pixel shift per date after the first.
    max_shift_px : float
        Bound of the per-date shifts, pixels.

    Returns
    -------
    RectFit
    """
    prob = _Problem(images, masks, fit_shifts)
    n_shift = 2 * (prob.n_dates - 1) if prob.fit_shifts else 0
    p0, lo, hi = _start_and_bounds(init, psf_px, masks[0].shape, n_shift, max_shift_px)
    if not fit_psf:
        lo[5], hi[5] = p0[5] - 1e-9, p0[5] + 1e-9
    sol = least_squares(prob.residuals, p0, bounds=(lo, hi), x_scale="jac", max_nfev=200)
    prob.reweight(sol.x)
    sol = least_squares(prob.residuals, sol.x, bounds=(lo, hi), x_scale="jac", max_nfev=200)
    n = int(sol.fun.size)
    free = np.flatnonzero(hi - lo > 1e-6)
    dof = max(n - len(free) - sum(4 * y.shape[0] for y in prob.y), 1)
    chi2 = float(sol.fun @ sol.fun) / dof
    jac = sol.jac[:, free]
    rect, psf, shifts = prob.unpack(sol.x)
    area = rect.area_px
    try:
        cov = np.linalg.inv(jac.T @ jac) * max(1.0, chi2)
        idx = [int(np.flatnonzero(free == k)[0]) for k in (2, 3)]
        g = np.array([area, area])
        var = float(g @ cov[np.ix_(idx, idx)] @ g)
        sd = math.sqrt(var) if var >= 0 and np.isfinite(var) else math.inf
    except (np.linalg.LinAlgError, IndexError):
        sd = math.inf
    geo_lo, geo_hi = lo[:5], hi[:5]
    at_bound = bool(np.any(np.isclose(sol.x[:5], geo_lo, atol=1e-4) |
                           np.isclose(sol.x[:5], geo_hi, atol=1e-4)))
    _, amp, amp_se = prob.solve(sol.x)
    t = np.array([float(np.max(np.abs(a) / np.maximum(se, 1e-12))) for a, se in
                  zip(amp, amp_se, strict=True)])
    return RectFit(rect=rect, area_px=area, area_sd_px=sd, psf_px=psf, shifts=shifts,
                   contrast_t=t, contrast=np.array(amp), chi2_dof=chi2,
                   n_px=int(sum(m.sum() for m in prob.masks)), success=bool(sol.success),
                   at_bound=at_bound)
