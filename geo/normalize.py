"""Relative radiometric normalisation on iMAD no-change pixels (pure).

iMAD (iteratively re-weighted Multivariate Alteration Detection, Nielsen 2007;
Canty & Nielsen 2008) finds the linear combinations of the two dates' bands
that are most correlated (canonical correlation). Their differences, the MAD
variates, are uncorrelated with known variances ``2 (1 - rho_i)``, so the sum of
their squared standardised values is chi-square with ``p`` degrees of freedom
for unchanged pixels. Re-weighting each pixel by its no-change probability and
iterating makes the fit ignore real change.

Pixels whose no-change probability is above 0.95 are then used to fit, per band,
``ref = gain * mov + offset`` by orthogonal (total least squares) regression,
which treats both dates' noise alike (Canty, Nielsen & Schmidt 2004).
Never a per-image min-max stretch: that changes with the content of the scene.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg
from scipy.special import gammainc

from geo.errors import BandError
from geo.geoarray import GeoArray
from geo.grid import check_same_grid

__all__ = ["ImadResult", "imad", "normalize_to", "orthogonal_fit"]

log = logging.getLogger(__name__)

_MAX_FIT_PX = 60_000
_NOCHANGE_P = 0.95
_GAIN_RANGE = (0.5, 2.0)
"""Plausible relative gains between two dates of the same sensor family."""
_MIN_CORR = 0.7
"""Minimum correlation of a band between dates on the no-change pixels."""


@dataclass(frozen=True, kw_only=True)
class ImadResult:
    """iMAD output on the pixels of a pair."""

    chi2: NDArray[np.float32]
    """Sum of squared standardised MAD variates, ``(rows, cols)``; 0 where invalid."""
    change_prob: NDArray[np.float32]
    """``chi2.cdf(chi2, p)``: probability that the pixel *changed*, 0..1; 0 where invalid."""
    mad: NDArray[np.float32]
    """Standardised MAD variates ``(p, rows, cols)``."""
    rho: NDArray[np.float64]
    """Canonical correlations, ascending."""
    n_iter: int
    """Iterations until the correlations converged."""


def _weighted_cov(z: NDArray[np.float64], w: NDArray[np.float64]) -> tuple[
        NDArray[np.float64], NDArray[np.float64]]:
    sw = w.sum()
    mean = (z * w[:, None]).sum(0) / sw
    d = z - mean
    cov = (d * w[:, None]).T @ d / sw
    return mean, cov


def imad(
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    valid: NDArray[np.bool_],
    *,
    max_iter: int = 25,
    tol: float = 1e-3,
    seed: int = 0,
) -> ImadResult:
    """Run iteratively re-weighted MAD between two co-registered multiband images.

    Parameters
    ----------
    x, y : ndarray of float32, shape (bands, rows, cols)
        The two dates, same bands in the same order.
    valid : ndarray of bool, shape (rows, cols)
        Pixels valid in both dates.
    max_iter, tol : int, float
        Stop after ``max_iter`` iterations or when no canonical correlation
        changes by more than ``tol``.
    seed : int
        At most 60,000 valid pixels (a fixed random sample) are used to fit.

    Returns
    -------
    ImadResult
    """
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"x {x.shape} and y {y.shape} must be (bands, rows, cols) and equal")
    p = x.shape[0]
    shape = x.shape[1:]
    v = valid & np.isfinite(x).all(0) & np.isfinite(y).all(0)
    idx = np.flatnonzero(v)
    zero2 = np.zeros(shape, np.float32)
    if idx.size < 10 * (2 * p + 1):
        return ImadResult(chi2=zero2, change_prob=zero2.copy(),
                          mad=np.zeros((p, *shape), np.float32), rho=np.ones(p), n_iter=0)
    rng = np.random.default_rng(seed)
    fit_idx = rng.choice(idx, _MAX_FIT_PX, replace=False) if idx.size > _MAX_FIT_PX else idx
    xf = x.reshape(p, -1)[:, fit_idx].T.astype(np.float64)
    yf = y.reshape(p, -1)[:, fit_idx].T.astype(np.float64)
    z = np.hstack([xf, yf])
    w = np.ones(len(z))
    rho_old = np.zeros(p)
    a = b = np.eye(p)
    mean = np.zeros(2 * p)
    sig2 = np.ones(p)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        mean, a, b, rho = _canonical_step(z, w, p)
        mad = (xf - mean[:p]) @ a - (yf - mean[p:]) @ b
        # robust (median absolute deviation) variances of the MAD variates over all pixels,
        # not the weighted 2 (1 - rho): the weighted estimate concentrates on the most
        # similar pixels iteration after iteration and the chi-square then over-flags
        sig2 = _robust_var(mad)
        c2 = (mad**2 / sig2).sum(1)
        w = 1.0 - _chi2_cdf(c2, p)
        w = np.maximum(w, 1e-12)
        if np.max(np.abs(rho - rho_old)) < tol:
            break
        rho_old = rho
    chi2, prob, variates = _apply(x, y, v, mean, a, b, sig2)
    return ImadResult(chi2=chi2, change_prob=prob, mad=variates, rho=rho, n_iter=n_iter)


_APPLY_BLOCK_PX = 1 << 18
"""Pixels per block of iMAD's whole-image pass: its float64 temporaries are bounded by the
block (they were five whole-image float64 arrays, about 170 bytes per pixel for 4 bands)."""


def _mad_block(x: NDArray[np.float32], y: NDArray[np.float32], sl: slice,
               mean: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
               ) -> NDArray[np.float64]:
    """The MAD variates of the flat pixels ``sl``, shape ``(pixels, p)``, in float64."""
    p = x.shape[0]
    # (p, p) @ (p, pixels), not (pixels, p) @ (p, p): the same products and sums (the same
    # result, bit for bit), but OpenBLAS splits a tall (pixels, p) operand over its threads,
    # whose spin-waits cost more CPU than the product (10x on 2 busy cores, 4 bands)
    xa = x.reshape(p, -1)[:, sl].astype(np.float64) - mean[:p, None]
    ya = y.reshape(p, -1)[:, sl].astype(np.float64) - mean[p:, None]
    out: NDArray[np.float64] = (a.T @ xa - b.T @ ya).T
    return out


def _apply(x: NDArray[np.float32], y: NDArray[np.float32], v: NDArray[np.bool_],
           mean: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64],
           sig2: NDArray[np.float64]) -> tuple[NDArray[np.float32], NDArray[np.float32],
                                               NDArray[np.float32]]:
    """The fitted transform over the whole image, block by block: chi², probability, MAD.

    Two passes: the variates (float32) give each one's median over the valid pixels; the
    second pass recomputes them in float64, centres and scales them, and sums the chi-square.
    The median is taken of the float32-stored variates (it differs from the float64 one by
    at most half a float32 unit).
    """
    p = x.shape[0]
    shape = x.shape[1:]
    n = v.size
    vr = v.ravel()
    blocks = [slice(s, min(n, s + _APPLY_BLOCK_PX)) for s in range(0, n, _APPLY_BLOCK_PX)]
    mad = np.empty((p, n), np.float32)
    for sl in blocks:
        mad[:, sl] = _mad_block(x, y, sl, mean, a, b).T
    med = np.array([np.median(mad[i][vr]) for i in range(p)], dtype=np.float64)
    scale = np.sqrt(sig2)
    chi2 = np.zeros(n, np.float32)
    prob = np.zeros(n, np.float32)
    for sl in blocks:
        m = (_mad_block(x, y, sl, mean, a, b) - med) / scale
        ok = vr[sl]
        m[~ok] = 0.0
        c2 = (m**2).sum(1)
        pr = _chi2_cdf(c2, p)
        pr[~ok] = 0.0
        mad[:, sl] = m.T
        chi2[sl] = c2
        prob[sl] = pr
    return chi2.reshape(shape), prob.reshape(shape), mad.reshape(p, *shape)


def _canonical_step(z: NDArray[np.float64], w: NDArray[np.float64], p: int
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                               NDArray[np.float64]]:
    """One weighted canonical correlation fit of ``z = [x | y]``: ``(mean, a, b, rho)``.

    ``a``/``b`` are the canonical vectors (unit variance, ``b`` signed so that each pair
    correlates positively), ``rho`` the canonical correlations in ascending order.
    """
    mean, cov = _weighted_cov(z, w)
    ridge = 1e-9 * np.trace(cov) / (2 * p) + 1e-12
    sxx = cov[:p, :p] + ridge * np.eye(p)
    syy = cov[p:, p:] + ridge * np.eye(p)
    sxy = cov[:p, p:]
    m = sxy @ np.linalg.solve(syy, sxy.T)
    m = (m + m.T) / 2
    lam, a = linalg.eigh(m, sxx)  # ascending rho^2; a^T sxx a = I
    rho = np.sqrt(np.clip(lam, 0.0, 1.0))
    b = np.linalg.solve(syy, sxy.T @ a)
    bn = np.sqrt(np.einsum("ij,ij->j", b, syy @ b))
    b = b / np.where(bn > 0, bn, 1.0)
    sgn = np.sign(np.einsum("ij,ij->j", a, sxy @ b))
    b = b * np.where(sgn == 0, 1.0, sgn)
    return mean, a, b, rho


def _chi2_cdf(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    out: NDArray[np.float64] = gammainc(k / 2.0, np.maximum(x, 0.0) / 2.0)
    return out


def _robust_var(m: NDArray[np.float64]) -> NDArray[np.float64]:
    med = np.median(m, axis=0)
    s = 1.4826 * np.median(np.abs(m - med), axis=0)
    return np.maximum(s * s, 1e-12)


def orthogonal_fit(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Orthogonal (total least squares) regression ``y = gain * x + offset``.

    Parameters
    ----------
    x, y : ndarray
        Paired samples.

    Returns
    -------
    (gain, offset) : tuple of float

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 50)
    >>> g, o = orthogonal_fit(x, 2 * x + 0.5)
    >>> round(g, 6), round(o, 6)
    (2.0, 0.5)
    """
    mx, my = float(x.mean()), float(y.mean())
    sxx = float(((x - mx) ** 2).mean())
    syy = float(((y - my) ** 2).mean())
    sxy = float(((x - mx) * (y - my)).mean())
    if abs(sxy) < 1e-15:
        gain = float(np.sqrt(syy / sxx)) if sxx > 0 else 1.0
    else:
        gain = (syy - sxx + np.sqrt((syy - sxx) ** 2 + 4 * sxy**2)) / (2 * sxy)
    return float(gain), float(my - gain * mx)


def _band_fits(ref: GeoArray, mov: GeoArray, use: list[int], nochange: NDArray[np.bool_]
               ) -> tuple[list[float], list[float], list[float]]:
    """Per band of ``mov``: gain, offset and correlation of its fit to ``ref`` on ``nochange``.

    Bands not in ``use`` (alpha) or without two no-change pixels get gain 1, offset 0, r 1.
    """
    gains: list[float] = []
    offsets: list[float] = []
    corrs: list[float] = []
    for i in range(len(mov.bands)):
        if i not in use or int(nochange.sum()) < 2:
            gains.append(1.0)
            offsets.append(0.0)
            corrs.append(1.0)
            continue
        x = mov.data[i][nochange].astype(np.float64)
        y = ref.data[i][nochange].astype(np.float64)
        g, o = orthogonal_fit(x, y)
        r = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else 0.0
        gains.append(g)
        offsets.append(o)
        corrs.append(r)
    return gains, offsets, corrs


def normalize_to(ref: GeoArray, mov: GeoArray) -> tuple[GeoArray, dict[str, Any]]:
    """Relatively normalise ``mov`` to the radiometry of ``ref``.

    Parameters
    ----------
    ref, mov : GeoArray
        Two co-registered dates on the same grid with the same band roles.

    Returns
    -------
    (GeoArray, dict)
        ``mov`` with each band mapped by ``gain * band + offset``, and an info
        dict: ``gains``, ``offsets`` (per band, in ``mov.bands`` order),
        ``bands``, ``n_nochange`` (pixels used for the fit), ``n_valid``,
        ``rho`` (canonical correlations), ``n_iter`` and ``method``. With
        fewer than 100 no-change pixels the 20 % of valid pixels with the
        lowest chi-square are used instead and ``method`` says so. When the fit is
        implausible for a band (a gain outside 0.5-2 or a correlation below 0.7
        on the no-change pixels: most of the scene changed) that band is left
        unchanged (gain 1, offset 0), ``method`` says so and ``rejected`` says
        why (also logged as a warning).
    """
    if ref.bands != mov.bands:
        raise BandError(f"{mov.source_id or mov.date}: bands {', '.join(mov.bands)} differ from "
                        f"{ref.source_id or ref.date}'s ({', '.join(ref.bands)}); set [source] "
                        "bands so that every date has the same ones")
    check_same_grid(ref.grid, mov.grid,
                    what=f"{mov.source_id or mov.date} vs {ref.source_id or ref.date}")
    use = [i for i, b in enumerate(ref.bands) if b != "alpha"]
    valid = ref.valid & mov.valid
    res = imad(ref.data[use], mov.data[use], valid)
    nochange = valid & (res.change_prob < 1.0 - _NOCHANGE_P)
    method = "imad-nochange-p95"
    n_valid = int(valid.sum())
    if int(nochange.sum()) < 100 and n_valid >= 100:
        cut = float(np.quantile(res.chi2[valid], 0.2))
        nochange = valid & (res.chi2 <= cut)
        method = "imad-lowest-chi2-20pct"
    gains, offsets, corrs = _band_fits(ref, mov, use, nochange)
    # the fit is only trusted when the "no-change" pixels really agree between dates; when
    # most of the scene changed (a new estate, a new industrial zone) iMAD's no-change set is
    # not unchanged land, and a fit on it would crush the image (WHU-CD 000213: gains 0.2)
    bad = [i for i in use if not (_GAIN_RANGE[0] <= gains[i] <= _GAIN_RANGE[1]
                                  and corrs[i] >= _MIN_CORR and np.isfinite(gains[i]))]
    out = mov.data.copy()
    reason = ""
    if bad:
        reason = (f"fit rejected for bands {[mov.bands[i] for i in bad]}: gains "
                  f"{[round(gains[i], 3) for i in bad]}, correlations "
                  f"{[round(corrs[i], 3) for i in bad]} (need gain in {_GAIN_RANGE} and "
                  f"r >= {_MIN_CORR}); those bands are left as they are")
        log.warning("normalisation of %s to %s: %s", mov.source_id or mov.date,
                    ref.source_id or ref.date, reason)
        method = method + ", partly identity (unreliable fit)" if len(bad) < len(use) else \
            "identity (unreliable fit)"
        for i in bad:
            gains[i], offsets[i] = 1.0, 0.0
    for i in use:
        if i not in bad:
            out[i] = (mov.data[i] * gains[i] + offsets[i]).astype(np.float32)
    info: dict[str, Any] = {
        "method": method,
        "bands": list(mov.bands),
        "gains": gains,
        "offsets": offsets,
        "n_nochange": int(nochange.sum()),
        "n_valid": n_valid,
        "rho": [float(r) for r in res.rho],
        "n_iter": res.n_iter,
        "correlations": corrs,
        "rejected": reason,
    }
    log.debug("normalised %s to %s: %s", mov.date, ref.date, info)
    return mov.with_data(out), info
