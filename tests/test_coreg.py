from __future__ import annotations

import numpy as np
import pytest
from _detect_scenes import grid
from scipy import ndimage

from geo.coreg import apply_shift, coregister, estimate_shift
from geo.geoarray import GeoArray


def _texture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    return (t / t.std()).astype(np.float32)


def _fourier_shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    return np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(img), (dy, dx))).real.astype(np.float32)


@pytest.mark.parametrize(("dy", "dx"), [(0.3, -0.7), (1.25, 0.5), (-2.4, 1.9), (0.0, 0.0)])
def test_recovers_subpixel_shift(dy: float, dx: float) -> None:
    big = _texture((192, 192))
    moved = _fourier_shift(big, dy, dx)
    ref = big[32:160, 32:160]
    mov = moved[32:160, 32:160] + np.random.default_rng(1).normal(0, 0.05, ref.shape)
    s = estimate_shift(ref, mov.astype(np.float32))
    assert s.ok
    # the shift that re-aligns mov is the negative of the content shift
    assert abs(s.dy_px + dy) <= 0.1
    assert abs(s.dx_px + dx) <= 0.1


def test_too_little_valid_area_is_not_ok() -> None:
    ref = _texture((64, 64))
    valid = np.zeros(ref.shape, bool)
    valid[:4, :4] = True
    s = estimate_shift(ref, ref, valid=valid)
    assert not s.ok


def _ga(img: np.ndarray) -> GeoArray:
    g = grid(img.shape)
    return GeoArray(data=np.stack([img, img * 0.8, img * 0.6]).astype(np.float32),
                    valid=np.ones(img.shape, bool), grid=g, date="2020-01-01",
                    bands=("red", "green", "blue"), kind="rgb")


def test_apply_shift_invalidates_pixels_from_outside() -> None:
    ga = _ga(_texture((64, 64)) + 5)
    out = apply_shift(ga, 2.5, -1.5)
    assert not out.valid[:2, :].any()
    assert not out.valid[:, -1:].any()
    assert out.valid[10:50, 10:50].all()
    assert out.data.dtype == np.float32
    np.testing.assert_allclose(out.data[:, 20, 20], ga.data[:, 18, 21], rtol=0.2)


def test_coregister_aligns_and_reports_residual() -> None:
    big = _texture((192, 192), seed=3) + 5
    ref = _ga(big[32:160, 32:160])
    mov = _ga(_fourier_shift(big, 0.6, -1.3)[32:160, 32:160])
    out, s = coregister(ref, mov)
    assert s.ok
    assert abs(s.dy_px + 0.6) <= 0.1 and abs(s.dx_px - 1.3) <= 0.1
    assert s.residual_px < 0.2
    inner = (slice(8, -8), slice(8, -8))
    err_before = np.abs(mov.data[0][inner] - ref.data[0][inner]).mean()
    err_after = np.abs(out.data[0][inner] - ref.data[0][inner]).mean()
    assert err_after < 0.3 * err_before


def test_coregister_refuses_shift_above_limit() -> None:
    big = _texture((192, 192), seed=4) + 5
    ref = _ga(big[32:160, 32:160])
    mov = _ga(_fourier_shift(big, 0.0, 8.0)[32:160, 32:160])
    out, s = coregister(ref, mov, max_shift_px=5.0)
    assert not s.ok
    assert s.residual_px > 5
    assert out is mov


@pytest.mark.parametrize("seed", range(6))
def test_a_shift_that_does_not_improve_agreement_is_not_applied(seed: int) -> None:
    """Two unrelated scenes (featureless or changed ground): the correlation peak is noise.

    Any estimated shift, sub-pixel ones included, must then be refused, not applied.
    """
    rng = np.random.default_rng(seed)
    ref = _ga(rng.normal(5, 0.01, (96, 96)).astype(np.float32))
    mov = _ga(rng.normal(5, 0.01, (96, 96)).astype(np.float32))
    out, s = coregister(ref, mov, max_shift_px=40.0)
    assert not (s.ok and s.magnitude_px > 0), s
    if s.magnitude_px > 0:
        assert out is mov


@pytest.mark.parametrize("seed", range(6))
def test_a_noise_peak_on_a_small_featureless_patch_is_not_applied(seed: int) -> None:
    """A 30 × 30 px field around one hall, the same ground on both dates plus noise.

    Whatever the peak says (often 1-2 px), the shift does not raise the correlation by more
    than chance, so nothing is moved.
    """
    rng = np.random.default_rng(100 + seed)
    field = ndimage.gaussian_filter(rng.normal(0, 1, (30, 30)), 3.0)
    field = field / field.std() * 0.005 + 5
    ref = _ga((field + rng.normal(0, 0.01, field.shape)).astype(np.float32))
    mov = _ga((field + rng.normal(0, 0.01, field.shape)).astype(np.float32))
    out, s = coregister(ref, mov, max_shift_px=5.0)
    assert out is mov, s
    assert not s.ok or s.magnitude_px == 0, s  # refused, or sub-pixel and left out
    if s.ok:
        assert s.residual_px > 0  # the doubt left is reported, not hidden


def test_a_real_subpixel_shift_is_still_applied() -> None:
    big = _texture((192, 192), seed=6) + 5
    ref = _ga(big[32:160, 32:160])
    mov = _ga(_fourier_shift(big, 0.4, -0.3)[32:160, 32:160])
    out, s = coregister(ref, mov)
    assert s.ok and abs(s.dy_px + 0.4) <= 0.1 and abs(s.dx_px - 0.3) <= 0.1
    assert out is not mov


def test_a_real_shift_of_several_pixels_is_still_applied() -> None:
    big = _texture((192, 192), seed=5) + 5
    ref = _ga(big[32:160, 32:160])
    mov = _ga(_fourier_shift(big, 3.0, -2.0)[32:160, 32:160])
    out, s = coregister(ref, mov, max_shift_px=10.0)
    assert s.ok and abs(s.dy_px + 3.0) <= 0.1 and abs(s.dx_px - 2.0) <= 0.1
    assert out is not mov


@pytest.mark.parametrize("m", [0, 1, 2, 5, 64, 461])
def test_tukey_window_is_scipys(m):
    """Co-registration's own Tukey window equals scipy.signal.windows.tukey bit for bit."""
    from scipy.signal.windows import tukey

    from geo.coreg import _tukey

    for alpha in (0.0, 0.1, 0.25, 0.5, 1.0):
        assert np.array_equal(_tukey(m, alpha), tukey(m, alpha))
