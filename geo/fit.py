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
from typing import Any

import numpy as np
from numpy.typing import NDArray
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
    >>> round(float(img.sum()), 2)                 # the flux equals the area
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


def _rect_stack(cx: NDArray[np.float64], cy: NDArray[np.float64], w: float, length: float,
                angle: float, psf_px: float, xx: NDArray[np.float64],
                yy: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`rect_image` for several centres at once: shape ``(len(cx), *xx.shape)``."""
    s = math.sqrt(max(psf_px, 1e-3) ** 2 + _BOX_VAR) * _SQRT2
    c, si = math.cos(angle), math.sin(angle)
    dx = xx[None] - cx[:, None, None]
    dy = yy[None] - cy[:, None, None]
    u = dx * c + dy * si
    v = -dx * si + dy * c
    pu = erf((u + w / 2) / s) - erf((u - w / 2) / s)
    pv = erf((v + length / 2) / s) - erf((v - length / 2) / s)
    return np.asarray(0.25 * pu * pv, dtype=np.float64)


class _Problem:
    """Variable-projection residuals for one window over several dates (vectorised)."""

    def __init__(self, images: Sequence[NDArray[np.floating]], masks: Sequence[NDArray[np.bool_]],
                 fit_shifts: bool) -> None:
        h, w = masks[0].shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
        self.xx, self.yy = xx, yy
        self.n_dates = len(images)
        self.fit_shifts = fit_shifts and self.n_dates > 1
        m = np.stack([np.asarray(k, bool) for k in masks]).reshape(self.n_dates, -1)
        self.m = m.astype(np.float64)  # (D, N)
        self.n_used = int(m.sum())
        xs = ((xx - w / 2) / max(w, 1)).ravel()
        ys = ((yy - h / 2) / max(h, 1)).ravel()
        bg = np.stack([np.ones_like(xs), xs, ys], axis=1)  # (N, 3)
        qs = []
        for d in range(self.n_dates):
            q = np.zeros_like(bg)
            q[m[d]], _ = np.linalg.qr(bg[m[d]])
            qs.append(q)
        self.q = np.stack(qs)  # (D, N, 3), zero rows where masked
        y = np.stack([np.nan_to_num(np.asarray(i, np.float64)) for i in images])
        y = y.reshape(self.n_dates, y.shape[1], -1) * self.m[:, None, :]  # (D, B, N)
        self.y = y - np.einsum("dnk,dbk->dbn", self.q, np.einsum("dbn,dnk->dbk", y, self.q))
        self.n_bands = int(y.shape[1])
        self.weights = np.ones((self.n_dates, self.n_bands, 1))

    def unpack(self, p: NDArray[np.float64]) -> tuple[Rect, float, NDArray[np.float64]]:
        rect = Rect(cx=p[0], cy=p[1], w=math.exp(p[2]), length=math.exp(p[3]), angle=p[4])
        shifts = np.zeros((self.n_dates, 2))
        if self.fit_shifts:
            shifts[1:] = p[6:].reshape(-1, 2)
        return rect, math.exp(p[5]), shifts

    def solve(self, p: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                     NDArray[np.float64]]:
        """Weighted residuals ``(D, B, N)``, roof contrasts and their standard errors ``(D, B)``."""
        rect, psf, shifts = self.unpack(p)
        img = _rect_stack(rect.cx + shifts[:, 0], rect.cy + shifts[:, 1], rect.w, rect.length,
                          rect.angle, psf, self.xx, self.yy).reshape(self.n_dates, -1)
        x = img * self.m
        x = x - np.einsum("dnk,dk->dn", self.q, np.einsum("dn,dnk->dk", x, self.q))
        xx = np.maximum(np.einsum("dn,dn->d", x, x), 1e-12)
        a = np.einsum("dbn,dn->db", self.y, x) / xx[:, None]
        res = (self.y - a[:, :, None] * x[:, None, :]) * self.weights
        se = 1.0 / self.weights[:, :, 0] / np.sqrt(xx)[:, None]
        return res, a, se

    def residuals(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.solve(p)[0].ravel()

    def reweight(self, p: NDArray[np.float64]) -> None:
        raw = self.solve(p)[0] / self.weights
        n = np.maximum(self.m.sum(axis=1), 1.0)[:, None]
        sd = np.sqrt(np.einsum("dbn,dbn->db", raw, raw) / n)
        self.weights = (1.0 / np.maximum(sd, 1e-6))[:, :, None]


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


def _jacobian(fun: Any, p: NDArray[np.float64], r: NDArray[np.float64],
              lo: NDArray[np.float64], hi: NDArray[np.float64]) -> NDArray[np.float64]:
    """Forward-difference Jacobian (steps away from the bounds; fixed parameters get 0)."""
    jac = np.zeros((r.size, p.size))
    for j in range(p.size):
        if hi[j] - lo[j] <= 1e-6:
            continue
        h = 1e-5 * max(1.0, abs(p[j]))
        h = -h if p[j] + h > hi[j] else h
        q = p.copy()
        q[j] += h
        jac[:, j] = (fun(q) - r) / h
    return jac


def _levenberg_marquardt(fun: Any, p0: NDArray[np.float64], lo: NDArray[np.float64],
                         hi: NDArray[np.float64], max_iter: int = 80
                         ) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    """Minimise ``|fun(p)|²`` in the box ``[lo, hi]``; return ``(p, jacobian at p, converged)``.

    Damped Gauss-Newton on the small normal equations (the parameters are few, the residuals
    many), steps clipped to the box.
    """
    p = np.clip(p0, lo, hi)
    r = fun(p)
    cost = float(r @ r)
    lam = 1e-3
    jac = _jacobian(fun, p, r, lo, hi)
    converged = False
    for _ in range(max_iter):
        a, g = jac.T @ jac, jac.T @ r
        d = np.maximum(np.diag(a), 1e-12)
        while lam < 1e12:
            try:
                step = np.linalg.solve(a + lam * np.diag(d), -g)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            pn = np.clip(p + step, lo, hi)
            rn = fun(pn)
            cn = float(rn @ rn)
            if cn < cost:
                break
            lam *= 4.0
        else:
            converged = True  # no descent direction left: at the minimum
            break
        gain = cost - cn
        p, r, cost, lam = pn, rn, cn, max(lam / 3.0, 1e-9)
        jac = _jacobian(fun, p, r, lo, hi)
        if gain <= 1e-8 * max(cost, 1e-300):
            converged = True
            break
    return p, jac, converged


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
    x, _, ok = _levenberg_marquardt(prob.residuals, p0, lo, hi)
    prob.reweight(x)
    x, jac, ok = _levenberg_marquardt(prob.residuals, x, lo, hi)
    fun = prob.residuals(x)
    free = np.flatnonzero(hi - lo > 1e-6)
    dof = max(prob.n_used * prob.n_bands - len(free) - 4 * prob.n_bands * prob.n_dates, 1)
    chi2 = float(fun @ fun) / dof
    jac = jac[:, free]
    rect, psf, shifts = prob.unpack(x)
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
    at_bound = bool(np.any(np.isclose(x[:5], geo_lo, atol=1e-4) |
                           np.isclose(x[:5], geo_hi, atol=1e-4)))
    _, amp, amp_se = prob.solve(x)
    t = np.max(np.abs(amp) / np.maximum(amp_se, 1e-12), axis=1)
    return RectFit(rect=rect, area_px=area, area_sd_px=sd, psf_px=psf, shifts=shifts,
                   contrast_t=t, contrast=np.array(amp), chi2_dof=chi2,
                   n_px=prob.n_used, success=ok,
                   at_bound=at_bound)
