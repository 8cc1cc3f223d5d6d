"""Run configuration: frozen, keyword-only dataclasses loaded from one TOML per AOI.

Unknown keys are rejected, so that a typo in a config cannot fail silently. Values are
checked by pydantic v2 in strict mode (``TypeAdapter`` over these same dataclasses: types
from the annotations, ranges from ``Annotated[..., Field(...)]``), so a wrong type, a
non-finite number or an out-of-range value fails at load with one line naming the file,
``[section] key``, the value and what is allowed.

Example ``aoi/ryongsong_feb11_plant.toml``::

    [aoi]
    geometry = "ryongsong_feb11_plant.geojson"

    [source]
    kind = "stac"
    api = "earth-search"
    collections = ["sentinel-2-l2a"]
    start = "2020-01-01"
    end = "2024-12-31"

    [grid]
    resolution_m = 10.0
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pydantic
from pydantic import AfterValidator, Field
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo.errors import ConfigError
from geo.types import BAND_ROLES, DETECT_METHODS, SOURCE_KINDS, DetectMethod, SourceKind

__all__ = [
    "AoiParams",
    "BuildingsParams",
    "CoregParams",
    "DetectParams",
    "GridParams",
    "MatchParams",
    "MeasureParams",
    "OutputParams",
    "RunConfig",
    "SourceConfig",
    "config_to_dict",
    "load_config",
    "read_toml",
    "resolve_defaults",
]

OnExcess = Literal["warn", "fail"]
NeighbourRule = Literal["nearest", "largest-adjacent"]
Period = Literal["month", "quarter", "year"]


def _iso_date(value: str) -> str:
    """Accept ``""`` or a real ``YYYY-MM-DD`` date."""
    if value:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a date written YYYY-MM-DD (quoted)") from None
        if len(value) != 10:
            raise ValueError("must be a date written YYYY-MM-DD (quoted)")
    return value


def _projected_epsg(value: int) -> int:
    """Accept an EPSG code of a projected CRS in metres."""
    try:
        crs = CRS.from_epsg(value)
    except CRSError:
        raise ValueError("is not a known EPSG code; use a projected CRS such as a UTM zone "
                         "(326xx north, 327xx south)") from None
    if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise ValueError("is not a projected CRS in metres; use a UTM zone or a polar "
                         "stereographic CRS (3413 north, 3031 south)")
    return value


IsoDate = Annotated[str, AfterValidator(_iso_date)]
"""``""`` or ``YYYY-MM-DD``."""
ProjectedEpsg = Annotated[int, AfterValidator(_projected_epsg)]
"""EPSG code of a projected CRS in metres."""
Frac = Annotated[float, Field(ge=0, le=1)]
NonNeg = Annotated[float, Field(ge=0)]
Pos = Annotated[float, Field(gt=0)]


def _check_in(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


def _check_pos(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not (value > 0 or (allow_zero and value == 0)):
        raise ConfigError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


@dataclass(frozen=True, kw_only=True, slots=True)
class AoiParams:
    """Where the AOI geometry lives and what it is called."""

    geometry: str = ""
    """Path to the AOI GeoJSON (EPSG:4326), relative to the TOML file."""
    name: str = ""
    """AOI name used in ids; defaults to the TOML file's stem."""
    measure_epsg: ProjectedEpsg | None = None
    """Projected EPSG code to measure in; default: the UTM zone of the AOI centroid."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceConfig:
    """Where imagery comes from."""

    kind: SourceKind = "local"
    """``local`` (a folder of GeoTIFFs), ``stac`` (a STAC API) or ``synthetic`` (demo)."""
    path: str = ""
    """Folder of GeoTIFFs/COGs, one per date (``kind = "local"``); relative to the TOML."""
    api: str = "earth-search"
    """STAC preset (``earth-search``, ``planetary-computer``) or any STAC API URL."""
    collections: tuple[str, ...] = ("sentinel-2-l2a",)
    """STAC collections to search."""
    start: IsoDate = ""
    """First acquisition date to consider, ``YYYY-MM-DD`` (inclusive)."""
    end: IsoDate = ""
    """Last acquisition date to consider, ``YYYY-MM-DD`` (inclusive)."""
    period: Period = "quarter"
    """Keep the best scene per month, quarter or year."""
    max_cloud_frac: Frac = 0.2
    """Drop scenes whose cloud fraction inside the AOI (+ buffer) is above this."""
    min_valid_frac: Frac = 0.5
    """Drop scenes with fewer usable pixels inside the AOI (+ buffer) than this fraction."""
    aoi_buffer_m: Annotated[float, Field(ge=0, le=10_000)] = 200.0
    """Buffer around the AOI for cloud statistics, in metres."""
    cache_dir: str = ""
    """Window cache; default ``~/.cache/factorywatch``."""
    max_retries: Annotated[int, Field(ge=0, le=100)] = 4
    """HTTP retries with exponential backoff on 5xx and timeouts."""
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """HTTP timeout per request, in seconds."""
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 0.5
    """First retry delay in seconds (doubling per retry, at most 8 s; GDAL's own retries
    wait this long each)."""
    search_ttl_h: NonNeg = 24.0
    """Reuse a cached STAC search younger than this many hours (offline: any age)."""
    bands: tuple[str, ...] = ()
    """Role of each band of local GeoTIFFs, in file order (``["swir16", "nir", "red",
    "green"]``); one of :data:`geo.types.BAND_ROLES` or ``"other"`` each. Empty: from the
    files' band descriptions, else guessed (with a run warning)."""
    sign: str = "auto"
    """How STAC asset hrefs are signed: ``planetary-computer``, ``none``, ``sas-token`` (a
    PC-style token endpoint, ``sign_token_url``) or ``auto`` (Planetary Computer's URL only)."""
    sign_token_url: str = ""
    """``sign = "sas-token"``: token endpoint with ``{collection}``, e.g.
    ``https://host/api/sas/v1/token/{collection}``."""

    def __post_init__(self) -> None:
        bad = [b for b in self.bands if b not in (*BAND_ROLES, "other")]
        if bad:
            raise ConfigError(f"source.bands: {bad[0]!r} is not a band role; use one of "
                              f"{', '.join(BAND_ROLES)} or 'other'")
        _check_in("source.kind", self.kind, SOURCE_KINDS)
        _check_in("source.period", self.period, get_args(Period))
        if not 0 <= self.max_cloud_frac <= 1:
            raise ConfigError(f"source.max_cloud_frac={self.max_cloud_frac} must be in [0, 1]")
        if not 0 <= self.min_valid_frac <= 1:
            raise ConfigError(f"source.min_valid_frac={self.min_valid_frac} must be in [0, 1]")
        _check_pos("source.search_ttl_h", self.search_ttl_h, allow_zero=True)
        _check_pos("source.aoi_buffer_m", self.aoi_buffer_m, allow_zero=True)
        _check_pos("source.timeout_s", self.timeout_s)
        _check_pos("source.backoff_s", self.backoff_s, allow_zero=True)
        _check_in("source.sign", self.sign, ("auto", "none", "planetary-computer", "sas-token"))
        if self.sign == "sas-token" and "{collection}" not in self.sign_token_url:
            raise ConfigError(
                "source.sign = \"sas-token\" needs source.sign_token_url with {collection} in "
                "it, e.g. \"https://host/api/sas/v1/token/{collection}\""
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class GridParams:
    """The AOI's target grid."""

    resolution_m: Annotated[float, Field(ge=0.01, le=10_000)] = 10.0
    """Pixel size of the AOI grid in metres (square pixels)."""
    buffer_m: NonNeg = 0.0
    """Grow the AOI's bounds by this much before snapping, in metres."""
    memory_budget_mb: Annotated[float, Field(gt=0)] | None = None
    """Refuse a run whose grid would need more memory than this (MiB); default: half the
    memory available when the run starts (see :mod:`geo.preflight`)."""

    def __post_init__(self) -> None:
        _check_pos("grid.resolution_m", self.resolution_m)
        _check_pos("grid.buffer_m", self.buffer_m, allow_zero=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class CoregParams:
    """Co-registration between dates."""

    enabled: bool = True
    """Estimate and remove a translation between each date and the reference date."""
    max_residual_m: Pos = 10.0
    """Above this residual (after alignment) the run warns or fails, see ``on_excess``."""
    on_excess: OnExcess = "warn"
    """``warn`` writes a warning into run.json and the outputs; ``fail`` stops the run."""
    max_shift_m: Pos = 50.0
    """Shifts larger than this are treated as a failed estimate (not applied)."""

    def __post_init__(self) -> None:
        _check_in("coreg.on_excess", self.on_excess, get_args(OnExcess))
        _check_pos("coreg.max_residual_m", self.max_residual_m)
        _check_pos("coreg.max_shift_m", self.max_shift_m)


@dataclass(frozen=True, kw_only=True, slots=True)
class DetectParams:
    """Building and change detection."""

    method: DetectMethod = "auto"
    """Per-date building mask method; ``auto`` picks the best measured one per imagery kind."""
    change_method: DetectMethod = "auto"
    """Pixel change method between dates; ``auto`` picks the best measured one."""
    min_area_m2: NonNeg = 200.0
    """Footprints smaller than this are dropped."""
    connectivity: Literal[4, 8] = 4
    """Pixel connectivity used for both labelling and polygonizing."""
    opening_m: NonNeg = 0.0
    """Morphological opening radius in metres; 0 means automatic (about 3 m or 1 px)."""
    threshold: float | None = None
    """Method-specific threshold; ``None`` uses the method's automatic rule (Otsu etc.)."""
    tile_px: int = 2048
    """Grids larger than this (rows or columns) detect buildings tile by tile, reading one
    window of the scene at a time (see geo/tiles.py); 0 never tiles."""
    tile_max_building_m: float = 300.0
    """Largest building expected, metres: sets the tile halo. A larger one is still exact
    (its tile is redone with a wider halo), only slower."""

    max_building_m2: float = 100_000.0
    """A footprint larger than this is a ``built-up region``, not a building: no ratios, no
    claim verdicts (see geo/plausibility.py)."""
    max_aoi_frac: float = 0.5
    """A footprint covering more than this fraction of the valid AOI is a built-up region."""
    min_solidity: float = 0.5
    """A footprint filling less than this fraction of its convex hull is a built-up region."""
    max_outline_spread: float = 0.35
    """An outline whose area moves by more than this fraction between the two detection
    thresholds is flagged ``outline_unstable`` (claims on it are undecidable)."""

    def __post_init__(self) -> None:
        if self.tile_px != 0 and self.tile_px < 256:
            raise ConfigError(f"detect.tile_px={self.tile_px} must be 0 (no tiling) or >= 256")
        _check_pos("detect.tile_max_building_m", self.tile_max_building_m)
        _check_pos("detect.max_building_m2", self.max_building_m2)
        for name in ("max_aoi_frac", "min_solidity", "max_outline_spread"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"detect.{name}={getattr(self, name)!r} must be in [0, 1]")
        _check_in("detect.method", self.method, DETECT_METHODS)
        _check_in("detect.change_method", self.change_method, DETECT_METHODS)
        _check_in("detect.connectivity", self.connectivity, (4, 8))
        _check_pos("detect.min_area_m2", self.min_area_m2, allow_zero=True)
        _check_pos("detect.opening_m", self.opening_m, allow_zero=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchParams:
    """Tracking buildings across dates."""

    iou_threshold: Annotated[float, Field(gt=0, le=1)] = 0.25
    """Minimum IoU for two footprints to be the same building (SpaceNet 7 uses 0.25)."""
    min_dates: Annotated[int, Field(ge=1, le=10_000)] = 1
    """A building counts only if seen on at least this many dates."""
    growth_tolerance: NonNeg = 0.10
    """Relative area change under which a building is ``unchanged``."""
    cover_frac: Annotated[float, Field(gt=0, le=1)] = 0.5
    """A footprint lying at least this fraction inside another is a piece of it (split/merge)."""

    def __post_init__(self) -> None:
        if not 0 < self.cover_frac <= 1:
            raise ConfigError(f"match.cover_frac={self.cover_frac} must be in (0, 1]")
        if not 0 < self.iou_threshold <= 1:
            raise ConfigError(f"match.iou_threshold={self.iou_threshold} must be in (0, 1]")
        if self.min_dates < 1:
            raise ConfigError(f"match.min_dates={self.min_dates} must be >= 1")
        _check_pos("match.growth_tolerance", self.growth_tolerance, allow_zero=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasureParams:
    """Area uncertainty and ratios."""

    neighbour: NeighbourRule = "nearest"
    """Which building is a site's neighbour: the nearest or the largest adjacent one."""
    neighbour_max_distance_m: Pos = 500.0
    """Buildings further than this are never neighbours."""
    digitising_sd_m: NonNeg | None = None
    """Outline uncertainty for vector-only input, in metres (1 sigma)."""
    n_draws: Annotated[int, Field(ge=100, le=1_000_000)] = 4000
    """Monte Carlo draws for ratio intervals."""
    seed: int = 0
    """Random seed, so that intervals are reproducible."""
    same_date_corr: Frac = 0.9
    """Correlation of the date-common area errors (blur, threshold, co-registration) of two
    buildings seen on the same date; 1 = same edge bias for both."""
    about_tolerance: Pos = 0.10
    """Claims ``~ F`` ("about F times") hold for ratios in ``F / (1 + t)`` .. ``F * (1 + t)``."""

    def __post_init__(self) -> None:
        _check_in("measure.neighbour", self.neighbour, get_args(NeighbourRule))
        _check_pos("measure.neighbour_max_distance_m", self.neighbour_max_distance_m)
        if self.n_draws < 100:
            raise ConfigError(f"measure.n_draws={self.n_draws} must be >= 100")
        if not 0 <= self.same_date_corr <= 1:
            raise ConfigError(f"measure.same_date_corr={self.same_date_corr} must be in [0, 1]")
        _check_pos("measure.about_tolerance", self.about_tolerance)


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputParams:
    """What the run writes."""

    rasters: bool = True
    """Write the co-registered scenes and change maps as COGs."""
    report: bool = True
    """Write ``report/index.html`` with figures."""
    gpkg: bool = True
    """Write ``results.gpkg`` with embedded QGIS styles."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildingsParams:
    """Guided mode: the analyst names the buildings (see :mod:`geo.guided`)."""

    priors: str = ""
    """GeoJSON/GPKG of named priors (polygons, boxes, or points with ``size_m2`` or
    ``width_m``/``length_m``); empty = automatic detection."""
    psf_sigma_px: float = 0.5
    """Starting PSF sigma of the 10–30 m fit, pixels (the joint fit refines it)."""
    search_m: float = 0.0
    """How far a building may extend beyond its prior, metres (0: 3 pixels, ≥ 10 m)."""

    def __post_init__(self) -> None:
        _check_pos("buildings.psf_sigma_px", self.psf_sigma_px)
        _check_pos("buildings.search_m", self.search_m, allow_zero=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunConfig:
    """Everything one AOI run needs, resolved (paths absolute)."""

    config_path: str = ""
    """The TOML this config came from (absolute), or empty when built in code."""
    aoi: AoiParams = field(default_factory=AoiParams)
    source: SourceConfig = field(default_factory=SourceConfig)
    grid: GridParams = field(default_factory=GridParams)
    coreg: CoregParams = field(default_factory=CoregParams)
    detect: DetectParams = field(default_factory=DetectParams)
    match: MatchParams = field(default_factory=MatchParams)
    measure: MeasureParams = field(default_factory=MeasureParams)
    output: OutputParams = field(default_factory=OutputParams)
    buildings: BuildingsParams = field(default_factory=BuildingsParams)


_SECTIONS: dict[str, type[Any]] = {
    "aoi": AoiParams,
    "source": SourceConfig,
    "grid": GridParams,
    "coreg": CoregParams,
    "detect": DetectParams,
    "match": MatchParams,
    "measure": MeasureParams,
    "output": OutputParams,
    "buildings": BuildingsParams,
}
_PATH_KEYS = {("aoi", "geometry"), ("source", "path"), ("source", "cache_dir"),
              ("buildings", "priors")}


_STRICT = pydantic.ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")


_TOML_TYPES = {"str": "string", "bool": "boolean", "int": "integer", "list": "array"}


_ADAPTERS: dict[str, pydantic.TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> pydantic.TypeAdapter[Any]:
    """The strict pydantic validator of one config dataclass (built once per class)."""
    if cls.__qualname__ not in _ADAPTERS:
        if "__pydantic_config__" not in vars(cls):
            setattr(cls, "__pydantic_config__", _STRICT)  # noqa: B010  (strict, finite, no extras)
        _ADAPTERS[cls.__qualname__] = pydantic.TypeAdapter(cls)
    return _ADAPTERS[cls.__qualname__]


def _toml(value: object) -> str:
    """A value as it would be written in TOML (for error messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _first_error(err: pydantic.ValidationError, section: str, raw: dict[str, Any]) -> str:
    """One line for the first problem pydantic found: [section] key = value: what is allowed."""
    e = err.errors(include_url=False)[0]
    ctx_err = (e.get("ctx") or {}).get("error")
    if isinstance(ctx_err, ConfigError):  # a __post_init__ check: it names its key itself
        return str(ctx_err)
    key = str(e["loc"][0]) if e["loc"] else ""
    msg = str(e["msg"]).replace("Value error, ", "").replace("Input should be", "must be")
    if e["type"] in ("float_type", "int_type", "string_type", "bool_type", "tuple_type"):
        got = type(e["input"]).__name__
        item = f" (item {e['loc'][1]})" if len(e["loc"]) > 1 else ""
        msg = f"{msg}{item}, not a TOML {_TOML_TYPES.get(got, got)}"
    return f"[{section}] {key} = {_toml(raw.get(key))}: {msg}; fix [{section}] {key}"


def _has_datetime(value: object) -> bool:
    if isinstance(value, list):
        return any(map(_has_datetime, value))
    if isinstance(value, dict):
        return any(map(_has_datetime, value.values()))
    return isinstance(value, dt.date | dt.time)


def _json_ready(section: str, raw: dict[str, Any]) -> None:
    """Refuse values JSON cannot carry (unquoted TOML dates and times), naming the key."""
    for key, value in raw.items():
        if isinstance(value, dict):
            raise ConfigError(f"[{section}] {key} must be a value, not a table; fix [{section}]")
        if isinstance(value, dt.date | dt.time):
            raise ConfigError(
                f"[{section}] {key} = {value.isoformat()}: an unquoted TOML date/time; "
                f'quote it: {key} = "{value.isoformat()[:10]}"'
            )
        if _has_datetime(value):
            raise ConfigError(f"[{section}] {key} holds an unquoted TOML date/time; quote it "
                              f"or fix [{section}] {key}")


def _build(section: str, cls: type[Any], raw: object, path: Path) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [{section}] must be a table; see aoi/*.toml for examples")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {section}.{unknown[0]}; valid keys in [{section}] are "
            f"{', '.join(sorted(names))}"
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if (section, key) in _PATH_KEYS and isinstance(value, str) and value:
            p = Path(value).expanduser()
            value = str(p if p.is_absolute() else (path.parent / p).resolve())
        values[key] = value
    try:
        _json_ready(section, values)
        return _adapter(cls).validate_json(json.dumps(values))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except pydantic.ValidationError as err:
        raise ConfigError(f"{path}: {_first_error(err, section, values)}") from None


def resolve_defaults(raw: object, path: str | Path) -> dict[str, dict[str, Any]]:
    """Check shared default sections (a watchlist's ``[defaults]``) and resolve their paths.

    Returns the sections with relative paths made absolute against ``path``'s folder, ready
    for ``load_config(..., defaults=...)``. Raises :class:`ConfigError` naming ``path`` for
    an unknown section or key or a bad value.
    """
    p = Path(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: [defaults] must be a table of config sections")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{p}: unknown section [defaults.{unknown[0]}]; valid sections are "
                          f"{', '.join(_SECTIONS)}")
    out: dict[str, dict[str, Any]] = {}
    for name, sec in raw.items():
        _build(name, _SECTIONS[name], sec, p)  # validates keys and values
        out[name] = {k: (str((p.parent / Path(str(v)).expanduser()).resolve())
                         if (name, k) in _PATH_KEYS and v else v) for k, v in sec.items()}
    return out


def read_toml(path: str | Path, missing: str) -> tuple[Path, dict[str, Any]]:
    """The resolved path and the parsed table of a TOML file; ConfigError names the fix.

    ``missing`` is the message (after the path) when the file does not exist.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ConfigError(f"{path}: {missing}")
    try:
        return p, tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{p}: not valid TOML ({err}); fix the syntax") from None


def load_config(path: str | Path, *,
                defaults: dict[str, dict[str, Any]] | None = None) -> RunConfig:
    """Read a per-AOI TOML config.

    Parameters
    ----------
    path : str or Path
        The TOML file. Relative paths inside it are resolved against its folder.
    defaults : dict, optional
        Sections merged under the file's own (its keys win), from
        :func:`resolve_defaults`: a watchlist's shared settings.

    Returns
    -------
    RunConfig
        The resolved configuration.

    Raises
    ------
    ConfigError
        If the file is missing, is not TOML, or has unknown keys or bad values.
    """
    p, raw = read_toml(path, "no such config file; pass an aoi/*.toml file")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{p}: unknown section [{unknown[0]}]; valid sections are {', '.join(_SECTIONS)}"
        )
    for name, sec in (defaults or {}).items():
        own = raw.get(name, {})
        raw[name] = {**sec, **own} if isinstance(own, dict) else own
    parts = {name: _build(name, cls, raw.get(name, {}), p) for name, cls in _SECTIONS.items()}
    aoi: AoiParams = parts["aoi"]
    if not aoi.name:
        aoi = dataclasses.replace(aoi, name=p.stem)
    if not aoi.geometry:
        guess = p.with_suffix(".geojson")
        aoi = dataclasses.replace(aoi, geometry=str(guess))
    parts["aoi"] = aoi
    return RunConfig(config_path=str(p), **parts)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Return the config as plain JSON-ready data (for run.json)."""
    return dataclasses.asdict(config)
