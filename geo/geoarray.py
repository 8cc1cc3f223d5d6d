"""GeoArray: pixels on an AOI grid, with their valid mask, date and band roles."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from geo.errors import MissingBandError
from geo.grid import Grid

__all__ = ["GeoArray", "band_roles", "roles_for_bands"]

_S2 = {
    "b01": "coastal", "b02": "blue", "b03": "green", "b04": "red", "b05": "rededge1",
    "b06": "rededge2", "b07": "rededge3", "b08": "nir", "b8a": "nir08", "b11": "swir16",
    "b12": "swir22",
}
_LANDSAT = {"sr_b1": "coastal", "sr_b2": "blue", "sr_b3": "green", "sr_b4": "red",
            "sr_b5": "nir", "sr_b6": "swir16", "sr_b7": "swir22"}
_ALIASES = {
    "blue": "blue", "green": "green", "red": "red", "nir": "nir", "near infrared": "nir",
    "near-infrared": "nir", "nir08": "nir08", "swir16": "swir16", "swir1": "swir16",
    "swir22": "swir22", "swir2": "swir22", "pan": "pan", "panchromatic": "pan", "gray": "pan",
    "grey": "pan", "alpha": "alpha", "coastal": "coastal", "rededge": "rededge1",
    "rededge1": "rededge1", "rededge2": "rededge2", "rededge3": "rededge3",
}


def _role(name: str) -> str | None:
    n = name.strip().lower().replace("_band", "")
    if n in _ALIASES:
        return _ALIASES[n]
    key = n.replace("band ", "b").replace("band", "b")
    if key in _S2:
        return _S2[key]
    if len(key) == 2 and key[0] == "b" and key[1].isdigit():
        return _S2.get(f"b0{key[1]}")
    return _LANDSAT.get(n)


def band_roles(descriptions: list[str | None], colorinterp: list[str]
               ) -> tuple[tuple[str, ...], bool]:
    """Band roles from descriptions / colour interpretation, and whether they were guessed.

    Roles are *guessed* when no band says what it is: 3 or 4 unnamed bands are taken as
    red, green, blue (, nir) and one unnamed band as panchromatic. A guess can be wrong (a
    Landsat SWIR1/NIR/Red/Green file is not RGBN): callers warn, and ``[source] bands``
    overrides it.

    Examples
    --------
    >>> band_roles(["B02", "B03", "B04", "B08"], ["gray"] * 4)
    (('blue', 'green', 'red', 'nir'), False)
    >>> band_roles([None] * 4, ["undefined"] * 4)
    (('red', 'green', 'blue', 'nir'), True)
    """
    n = len(descriptions)
    out: list[str] = []
    for i, (d, ci) in enumerate(zip(descriptions, colorinterp, strict=True)):
        r = _role(d) if d else None
        if r is None and ci in ("red", "green", "blue", "alpha"):
            r = ci
        out.append(r or f"b{i + 1}")
    guessed = False
    if all(o.startswith("b") and o[1:].isdigit() for o in out):
        if n in (3, 4):
            out = ["red", "green", "blue", "nir" if n == 4 else ""][:n]
            guessed = True
        elif n == 1:
            out = ["pan"]
            guessed = not (colorinterp and colorinterp[0] == "gray")
    return tuple(out), guessed


def roles_for_bands(descriptions: list[str | None], colorinterp: list[str]) -> tuple[str, ...]:
    """Map band descriptions (or colour interpretation) to band roles.

    Parameters
    ----------
    descriptions : list of str or None
        GDAL band descriptions (``"B04"``, ``"red"``, ``"SR_B5"``, ...).
    colorinterp : list of str
        GDAL colour interpretation names (``"red"``, ``"gray"``, ``"alpha"``, ...).

    Returns
    -------
    tuple of str
        One role per band; unknown bands are ``"b<i>"``. See :func:`band_roles` for whether
        the roles were guessed.

    Examples
    --------
    >>> roles_for_bands(["B02", "B03", "B04", "B08"], ["gray"] * 4)
    ('blue', 'green', 'red', 'nir')
    >>> roles_for_bands([None, None, None], ["red", "green", "blue"])
    ('red', 'green', 'blue')
    >>> roles_for_bands([None, None, None], ["undefined"] * 3)
    ('red', 'green', 'blue')
    >>> roles_for_bands([None], ["gray"])
    ('pan',)
    """
    return band_roles(descriptions, colorinterp)[0]


@dataclass(frozen=True, kw_only=True)
class GeoArray:
    """Pixels on an AOI grid.

    ``data`` is ``(band, row, col)`` float32 reflectance-like values; ``valid``
    is ``(row, col)``, False where the source had nodata, a mask, or cloud.
    """

    data: NDArray[np.float32]
    valid: NDArray[np.bool_]
    grid: Grid
    date: str
    """Acquisition date, ``YYYY-MM-DD``."""
    bands: tuple[str, ...]
    """Band roles, one per band."""
    source_id: str = ""
    """Scene id or file name."""
    kind: str = "multispectral"
    """``multispectral`` (has nir) or ``rgb`` (visible only) or ``pan``."""
    roles_guessed: bool = False
    """True when the band roles were guessed (unnamed bands), not read or configured."""

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or self.data.shape[1:] != self.grid.shape:
            raise ValueError(f"data shape {self.data.shape} does not match grid {self.grid.shape}")
        if self.valid.shape != self.grid.shape:
            raise ValueError("valid mask shape does not match grid")
        if len(self.bands) != self.data.shape[0]:
            raise ValueError("one band role per band is needed")

    def band(self, role: str) -> NDArray[np.float32]:
        """Return one band by role; :class:`MissingBandError` names the roles available."""
        if role not in self.bands:
            raise MissingBandError(
                f"{self.source_id or self.date or 'image'}: no {role!r} band (it has "
                f"{', '.join(self.bands)}); set [source] bands to name it, or pick a "
                "[detect] method that needs only these bands")
        out: NDArray[np.float32] = self.data[self.bands.index(role)]
        return out

    def has(self, *roles: str) -> bool:
        """True if every role is present."""
        return all(r in self.bands for r in roles)

    def with_data(
        self, data: NDArray[np.float32], valid: NDArray[np.bool_] | None = None
    ) -> GeoArray:
        """Return a copy with new pixels (and optionally a new mask)."""
        return replace(self, data=data, valid=self.valid if valid is None else valid)

    @property
    def valid_frac(self) -> float:
        """Fraction of valid pixels."""
        return float(self.valid.mean()) if self.valid.size else 0.0
