"""Sentinel-2 L2A and Landsat C2 L2 from any STAC API: search, per-AOI cloud QA, windowed reads.

:class:`StacSource` implements :class:`geo.sources.base.ImagerySource`:

``search(aoi, start, end)``
    pystac-client item search by AOI geometry (``intersects``), date range and collections;
    then, for every candidate item, the classification layer (S2 ``SCL`` / Landsat
    ``QA_PIXEL``) is read *windowed* over the AOI plus ``aoi_buffer_m`` with nearest-neighbour
    resampling, and its cloud and valid fractions decide: scenes above ``max_cloud_frac`` or
    below ``min_valid_frac`` are dropped, duplicates of one acquisition (same platform and day,
    e.g. two overlapping MGRS tiles or a reprocessed item) are dropped, and the best scene per
    ``period`` (month, quarter, year) is kept.
``read(scene, grid)``
    blue, green, red, nir, swir16, swir22 read through GDAL ``/vsicurl/`` range requests onto
    the AOI grid (20 m bands resampled bilinearly), as reflectance: Sentinel-2
    ``(DN + BOA_ADD_OFFSET) / 10000`` with ``BOA_ADD_OFFSET = -1000`` for processing baseline
    04.00 and later unless the provider already applied it; Landsat ``DN * 2.75e-5 - 0.2``.
    ``valid`` is False where the classification layer says cloud, cloud shadow, saturated or
    nodata -- except pixels that :func:`geo.sources.qa.bright_stable_mask` finds to be bright,
    stable surfaces across the selected dates (new roofs are not clouds).

Every window goes through :class:`geo.sources.cache.WindowCache`; a second run reads nothing
from the network, and ``offline=True`` runs from the cache alone. Planetary Computer hrefs are
signed just before a read and never stored, logged or put into errors.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from shapely.geometry import mapping

from geo._convert import finite_or_none
from geo.aoi import Aoi
from geo.config import RunConfig
from geo.errors import (
    CacheMissError,
    ConfigError,
    NetworkError,
    NoImageryError,
    SourceError,
    one_line,
)
from geo.geoarray import GeoArray
from geo.grid import Grid, grid_for_aoi, to_crs
from geo.http import (
    RETRY_STATUS,
    RetryPolicy,
    api_retry,
    call_with_retries,
    clear_vsicurl_cache,
    gdal_retry_env,
    install_log_redaction,
    redact,
    strip_query,
)
from geo.reading import read_to_grid
from geo.sources.base import Scene
from geo.sources.cache import WindowCache, default_cache_dir, grid_hash, query_hash
from geo.sources.qa import (
    boa_offset_evidence,
    bright_stable_mask,
    false_cloud_roof_mask,
    landsat_qa_masks,
    persistent_cloud_mask,
    qa_fractions,
    scl_masks,
)
from geo.sources.signing import AssetSigner, resolve_sign

__all__ = [
    "BANDS",
    "PRESETS",
    "StacSource",
    "boa_offset_contradiction",
    "gdal_href",
    "period_key",
    "reflectance_params",
    "scene_from_item",
    "select_scenes",
]

log = logging.getLogger(__name__)

PRESETS: dict[str, str] = {
    "earth-search": "https://earth-search.aws.element84.com/v1",
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
}
"""Named STAC APIs; ``[source] api`` may also be any STAC API URL."""

BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")
"""Band roles that :meth:`StacSource.read` returns, in this order (those the item has)."""
REQUIRED_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")
"""Bands every detection method and the QA checks need (red + nir for built-up indices, the
visible bands for the BOA-offset and bright-roof checks); swir16/swir22 are optional."""

_ASSET_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "sentinel-2": {
        "blue": ("blue", "B02"), "green": ("green", "B03"), "red": ("red", "B04"),
        "nir": ("nir", "B08"), "swir16": ("swir16", "B11"), "swir22": ("swir22", "B12"),
        "qa": ("scl", "SCL"),
    },
    "landsat": {
        "blue": ("blue", "SR_B2"), "green": ("green", "SR_B3"), "red": ("red", "SR_B4"),
        "nir": ("nir08", "nir", "SR_B5"), "swir16": ("swir16", "SR_B6"),
        "swir22": ("swir22", "SR_B7"), "qa": ("qa_pixel", "QA_PIXEL"),
    },
}
_QA_RES_M = {"sentinel-2": 20.0, "landsat": 30.0}
_S2_BOA_ADD_OFFSET = -1000.0
_S2_QUANTIFICATION = 10000.0
_LANDSAT_SCALE = 0.0000275
_LANDSAT_OFFSET = -0.2
_Visible = tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]
_VISIBLE_MEMO_BYTES = 256 * 2**20
"""In-memory budget of :meth:`StacSource._visible`'s memo (least recently used out first)."""
_BRIGHT_MIN_DATES = 3
_CLEAR_DATE_MAX_CLOUD = 0.5
_BOA_CONTRADICTION_FRAC = 0.01
"""Above this fraction of visible DNs < 1000, the BOA offset is taken to be already removed."""


# --- pure helpers ---------------------------------------------------------------------------
def _mission(item: dict[str, Any]) -> str:
    p = item.get("properties", {})
    text = f"{p.get('platform', '')} {p.get('constellation', '')} {item.get('collection', '')}"
    return "landsat" if "landsat" in text.lower() else "sentinel-2"


def _asset_key(item: dict[str, Any], mission: str, role: str) -> str | None:
    assets: dict[str, Any] = item.get("assets", {})
    lower = {k.lower(): k for k in assets}
    for cand in _ASSET_KEYS[mission][role]:
        if cand.lower() in lower:
            return lower[cand.lower()]
    for k, a in assets.items():  # fall back on eo:bands common names
        names = {str(b.get("common_name", "")).lower() for b in a.get("eo:bands", []) or []}
        if role in names and len(a.get("eo:bands", [])) == 1:
            return str(k)
    return None


def _baseline(props: dict[str, Any]) -> str | None:
    pb = props.get("s2:processing_baseline") or props.get("sentinel:processing_baseline")
    if pb:
        return str(pb)
    m = re.search(r"_N(\d{2})(\d{2})_", str(props.get("s2:product_uri", "")))
    return f"{m.group(1)}.{m.group(2)}" if m else None


def reflectance_params(item: dict[str, Any]) -> dict[str, Any]:
    """Scale, offset and BOA-offset provenance that turn an item's DNs into reflectance.

    Sentinel-2 processing baseline 04.00 and later (25 January 2022 on) stores
    ``DN = 10000 * reflectance + 1000`` (``BOA_ADD_OFFSET = -1000``). Earth Search's
    ``sentinel-2-l2a`` collection removed that offset from the pixels of many items already
    and says so in ``earthsearch:boa_offset_applied``; then only the scale is applied.
    Landsat Collection 2 Level-2 uses ``DN * 2.75e-5 - 0.2``.

    Examples
    --------
    >>> it = {"collection": "sentinel-2-l2a", "properties": {"platform": "sentinel-2a",
    ...       "s2:processing_baseline": "05.09"}}
    >>> p = reflectance_params(it); p["reflectance_offset"], p["boa_offset_applied_by"]
    (-0.1, 'factorywatch')
    >>> it["properties"]["earthsearch:boa_offset_applied"] = True
    >>> reflectance_params(it)["reflectance_offset"]
    0.0
    >>> it["properties"] = {"platform": "sentinel-2a", "s2:processing_baseline": "02.12"}
    >>> reflectance_params(it)["boa_offset_applied_by"]
    'not-needed'
    """
    props = item.get("properties", {})
    if _mission(item) == "landsat":
        return {"reflectance_scale": _LANDSAT_SCALE, "reflectance_offset": _LANDSAT_OFFSET,
                "boa_add_offset": 0.0, "boa_offset_applied_by": "not-needed"}
    pb = _baseline(props)
    try:
        needs = pb is not None and float(pb) >= 4.0
    except ValueError:
        needs = False
    provider = props.get("earthsearch:boa_offset_applied")
    if not needs:
        by, add = "not-needed", 0.0
    elif provider is True:
        by, add = "provider", 0.0
    else:
        by, add = "factorywatch", _S2_BOA_ADD_OFFSET
    return {"reflectance_scale": 1.0 / _S2_QUANTIFICATION,
            "reflectance_offset": add / _S2_QUANTIFICATION,
            "boa_add_offset": _S2_BOA_ADD_OFFSET if needs else 0.0,
            "boa_offset_applied_by": by}


def boa_offset_contradiction(
    visible_dn: Sequence[NDArray[np.floating]], valid: NDArray[np.bool_]
) -> float:
    """Fraction of valid pixels whose visible DNs say the BOA offset is *not* in the data.

    With ``BOA_ADD_OFFSET = -1000`` in the data, a visible-band DN below 1000 means a negative
    surface reflectance, which over land and water in blue, green and red is very rare. Earth
    Search has mislabelled items (``earthsearch:boa_offset_applied: false`` while the pixels are
    already harmonised, Element84/earth-search#66, #71); a large fraction here exposes them.

    Examples
    --------
    >>> v = np.ones((2, 2), bool)
    >>> dark = np.array([[300.0, 1500], [1500, 1500]])
    >>> boa_offset_contradiction([np.full((2, 2), 1400.0), dark], v)
    0.25
    """
    ok = np.asarray(valid, dtype=bool)
    n = int(ok.sum())
    if n == 0:
        return 0.0
    low = np.zeros(ok.shape, dtype=bool)
    for dn in visible_dn:
        low |= (np.asarray(dn) > 0) & (np.asarray(dn) < -_S2_BOA_ADD_OFFSET)
    return float((low & ok).sum() / n)


def _relative_orbit(props: dict[str, Any]) -> int | None:
    for key in ("sat:relative_orbit", "sentinel:relative_orbit"):
        if props.get(key) is not None:
            return int(props[key])
    m = re.search(r"_R(\d{3})_", str(props.get("s2:product_uri", "")))
    return int(m.group(1)) if m else None




def _epsg(item: dict[str, Any], asset_keys: dict[str, str]) -> int | None:
    """EPSG code from ``proj:epsg`` or ``proj:code`` (item, else the red band's asset)."""
    places = [item.get("properties", {})]
    if "red" in asset_keys:
        places.append(item.get("assets", {}).get(asset_keys["red"], {}))
    for p in places:
        if p.get("proj:epsg") is not None:
            return int(p["proj:epsg"])
        m = re.fullmatch(r"(?i)EPSG:(\d+)", str(p.get("proj:code") or ""))
        if m:
            return int(m.group(1))
    return None


def scene_from_item(item: dict[str, Any], *, api: str = "",
                    required: Sequence[str] = REQUIRED_BANDS) -> Scene:
    """Build a :class:`Scene` (unsigned hrefs, provenance in ``properties``) from a STAC item.

    Bands in ``required`` and the classification layer must have an asset; other bands of
    :data:`BANDS` are optional (``properties["missing_assets"]`` lists the absent ones).

    Raises
    ------
    SourceError
        If the item lacks a datetime, the classification layer or a required band asset.
    """
    props: dict[str, Any] = item.get("properties", {})
    iid = str(item.get("id", ""))
    dt = str(props.get("datetime") or props.get("start_datetime") or "")
    if not dt:
        raise SourceError(f"STAC item {iid}: no datetime; the API returned an incomplete item")
    mission = _mission(item)
    assets: dict[str, str] = {}
    keys: dict[str, str] = {}
    for role in (*BANDS, "qa"):
        k = _asset_key(item, mission, role)
        if k is None:
            continue
        keys[role] = k
        assets[role] = strip_query(str(item["assets"][k]["href"]))
    missing = [r for r in (*required, "qa") if r not in assets]
    if missing:
        raise SourceError(
            f"STAC item {iid}: no asset for {', '.join(missing)} (needed); pick a Sentinel-2 "
            "L2A or Landsat C2 L2 collection in [source] collections"
        )
    sun_el = finite_or_none(props.get("view:sun_elevation"))
    if sun_el is None and finite_or_none(props.get("s2:mean_solar_zenith")) is not None:
        sun_el = 90.0 - float(props["s2:mean_solar_zenith"])
    sun_az = (finite_or_none(props.get("view:sun_azimuth"))
              or finite_or_none(props.get("s2:mean_solar_azimuth")))
    out: dict[str, Any] = {
        "collection": item.get("collection"),
        "mission": mission,
        "platform": str(props.get("platform", "")).lower() or None,
        "relative_orbit": _relative_orbit(props),
        "wrs_path": props.get("landsat:wrs_path"),
        "wrs_row": props.get("landsat:wrs_row"),
        "tile": (props.get("s2:mgrs_tile") or props.get("grid:code")
                 or props.get("mgrs:grid_square")),
        "datatake_id": props.get("s2:datatake_id"),
        "processing_baseline": _baseline(props),
        "view_sun_elevation_deg": sun_el,
        "view_sun_azimuth_deg": sun_az,
        "view_incidence_angle_deg": finite_or_none(props.get("view:incidence_angle")),
        "view_azimuth_deg": finite_or_none(props.get("view:azimuth")),
        "view_off_nadir_deg": finite_or_none(props.get("view:off_nadir")),
        "scene_cloud_cover_pct": finite_or_none(props.get("eo:cloud_cover")),
        "epsg": _epsg(item, keys),
        "asset_keys": keys,
        "missing_assets": [r for r in BANDS if r not in assets],
        "stac_api": redact(api),
        **reflectance_params(item),
    }
    return Scene(id=iid, date=dt[:10], datetime=dt, href=assets[BANDS[0]], assets=assets,
                 properties=out)


def period_key(date: str, period: str) -> str:
    """Return the period that a ``YYYY-MM-DD`` date falls in.

    Examples
    --------
    >>> period_key("2023-05-14", "month"), period_key("2023-05-14", "quarter")
    ('2023-05', '2023-Q2')
    >>> period_key("2023-05-14", "year")
    '2023'
    """
    y, m = date[:4], int(date[5:7])
    if period == "month":
        return f"{y}-{m:02d}"
    if period == "quarter":
        return f"{y}-Q{(m - 1) // 3 + 1}"
    if period == "year":
        return y
    raise ValueError(f"period={period!r} must be month, quarter or year")


def _rank(s: Scene) -> tuple[float, float, str, str]:
    p = s.properties
    return (-float(p.get("valid_frac") or 0.0), float(p.get("aoi_cloud_frac", 1.0)),
            _neg_str(str(p.get("processing_baseline") or "")), s.id)


def _neg_str(s: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in s)


def select_scenes(
    scenes: Sequence[Scene],
    *,
    period: str,
    max_cloud_frac: float,
    min_valid_frac: float,
) -> list[Scene]:
    """Choose the best scene per period; mark every candidate's fate in its properties.

    Each scene must carry ``aoi_cloud_frac`` and ``valid_frac``; where it also carries
    ``buildings_cloud_frac`` / ``buildings_valid_frac`` (the buildings being measured, or the
    AOI without its buffer), those decide instead: a partly cloudy date whose buildings are
    clear is kept (``kept_partly_cloudy = True``). A scene is dropped when its cloud fraction
    is above ``max_cloud_frac`` (``reject_reason="cloud"``), its valid
    fraction is below ``min_valid_frac`` (``"low_valid"``), it repeats an acquisition already
    kept (same platform and UTC day: overlapping tiles or reprocessed items,
    ``"duplicate_of:<id>"``), or a better scene exists in its period
    (``"not_best_in_period:<id>"``). "Better" means more valid pixels, then less cloud, then
    the newer processing baseline.

    Returns
    -------
    list of Scene
        The chosen scenes, by date (``properties["selected"] = True``).
    """
    for s in scenes:
        s.properties["selected"] = False
        s.properties["reject_reason"] = None
        s.properties["period"] = period_key(s.date, period)
    ok: list[Scene] = []
    for s in scenes:
        p = s.properties
        cloud = float(p.get("buildings_cloud_frac", p.get("aoi_cloud_frac", 1.0)))
        valid = float(p.get("buildings_valid_frac", p.get("valid_frac", 0.0)))
        p["kept_partly_cloudy"] = False
        if cloud > max_cloud_frac:
            p["reject_reason"] = "cloud"
        elif valid < min_valid_frac:
            p["reject_reason"] = "low_valid"
        else:
            p["kept_partly_cloudy"] = float(p.get("aoi_cloud_frac", 0.0)) > max_cloud_frac
            ok.append(s)
    best_of_acq: dict[tuple[str, str], Scene] = {}
    for s in sorted(ok, key=_rank):
        key = (str(s.properties.get("platform") or ""), s.date)
        if key in best_of_acq:
            s.properties["reject_reason"] = f"duplicate_of:{best_of_acq[key].id}"
        else:
            best_of_acq[key] = s
    best_of_period: dict[str, Scene] = {}
    for s in sorted(best_of_acq.values(), key=_rank):
        k = s.properties["period"]
        if k in best_of_period:
            s.properties["reject_reason"] = f"not_best_in_period:{best_of_period[k].id}"
        else:
            best_of_period[k] = s
            s.properties["selected"] = True
    return sorted(best_of_period.values(), key=lambda s: (s.date, s.id))


def gdal_href(href: str) -> str:
    """Return the GDAL path for an asset href (``/vsicurl/`` for HTTP, ``/vsis3/`` for S3).

    Examples
    --------
    >>> gdal_href("https://a.b/c/B04.tif")
    '/vsicurl/https://a.b/c/B04.tif'
    >>> gdal_href("s3://sentinel-cogs/x/B04.tif")
    '/vsis3/sentinel-cogs/x/B04.tif'
    """
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    return href


@dataclass(frozen=True, kw_only=True, slots=True)
class _Window:
    data: NDArray[np.float32]
    valid: NDArray[np.bool_]


# --- the source ------------------------------------------------------------------------------
class StacSource:
    """Imagery from a STAC API, read window by window through an on-disk cache.

    Parameters
    ----------
    api : str
        A preset name (``earth-search``, ``planetary-computer``) or a STAC API URL.
    collections : sequence of str
        Collections to search (Sentinel-2 L2A and/or Landsat C2 L2).
    cache_dir : str or Path, optional
        Window cache; default :func:`geo.sources.cache.default_cache_dir`.
    period : {"month", "quarter", "year"}
        Keep the best scene per period.
    max_cloud_frac, min_valid_frac : float
        Scene choice thresholds, measured inside the AOI plus ``aoi_buffer_m``.
    aoi_buffer_m : float
        Buffer around the AOI for the cloud statistics, in metres.
    policy : RetryPolicy, optional
        Retries, backoff and timeouts for the API and the COG reads.
    offline : bool
        Use the cache only; raise :class:`CacheMissError` listing what is missing.
    signer : callable, optional
        ``href -> signed href``, applied just before a read; signed hrefs are never stored.
        Overrides ``sign``.
    sign : {"auto", "none", "planetary-computer", "sas-token"}
        How asset hrefs are signed (see :mod:`geo.sources.signing`); ``auto`` signs for
        Planetary Computer's API URL only.
    sign_token_url : str
        Token endpoint for ``sign="sas-token"``, with ``{collection}``.
    buildings : shapely geometry, optional
        The buildings being measured (EPSG:4326, e.g. footprint priors); default the AOI
        polygon without its buffer. A date is kept when these are clear enough, even if the
        buffer is cloudy (``buildings_cloud_frac``).
    search_ttl_h : float
        Reuse a cached search result younger than this (hours) instead of asking the API.
    max_workers : int
        Classification-layer windows read at once during search (threads).
    """

    def __init__(
        self,
        api: str = "earth-search",
        *,
        collections: Sequence[str] = ("sentinel-2-l2a",),
        cache_dir: str | None = None,
        period: str = "quarter",
        max_cloud_frac: float = 0.2,
        min_valid_frac: float = 0.5,
        aoi_buffer_m: float = 200.0,
        policy: RetryPolicy | None = None,
        offline: bool = False,
        signer: Callable[[str], str] | None = None,
        search_ttl_h: float = 24.0,
        max_workers: int = 8,
        sign: str = "auto",
        sign_token_url: str = "",
        buildings: Any = None,
    ) -> None:
        self.api_url = PRESETS.get(api, api).rstrip("/")
        if not self.api_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"[source] api={api!r} is neither a preset ({', '.join(PRESETS)}) nor an "
                "http(s) URL"
            )
        self.collections = tuple(collections)
        self.cache = WindowCache(cache_dir or default_cache_dir())
        self.period = period
        self.max_cloud_frac = max_cloud_frac
        self.min_valid_frac = min_valid_frac
        self.aoi_buffer_m = aoi_buffer_m
        self.policy = policy or RetryPolicy()
        self.offline = offline
        self.search_ttl_h = search_ttl_h
        self.max_workers = max(1, int(max_workers))
        self.is_planetary_computer = "planetarycomputer.microsoft.com" in self.api_url
        self._signer = signer
        self.signer = AssetSigner(resolve_sign(sign, self.api_url, sign_token_url),
                                  token_url=sign_token_url, policy=self.policy)
        self.buildings = buildings
        self._selected: list[Scene] = []
        self._bright: dict[str, NDArray[np.bool_]] = {}
        self._vis: OrderedDict[tuple[str, str], _Visible] = OrderedDict()
        self._vis_lock = threading.Lock()
        install_log_redaction()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to Dask workers) without the in-memory window memo and its lock."""
        state = dict(self.__dict__)
        state["_vis"] = OrderedDict()
        state.pop("_vis_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._vis_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: RunConfig, *, offline: bool = False) -> StacSource:
        """Build from a :class:`RunConfig` (``[source] kind = "stac"``)."""
        s = config.source
        return cls(
            s.api, collections=s.collections, cache_dir=s.cache_dir or None, period=s.period,
            max_cloud_frac=s.max_cloud_frac, min_valid_frac=s.min_valid_frac,
            aoi_buffer_m=s.aoi_buffer_m,
            policy=RetryPolicy(max_retries=s.max_retries, timeout_s=s.timeout_s,
                               backoff_s=s.backoff_s),
            offline=offline, search_ttl_h=s.search_ttl_h, sign=s.sign,
            sign_token_url=s.sign_token_url,
        )

    # --- signing ----------------------------------------------------------------------------
    def _sign(self, href: str, collection: str) -> str:
        if self._signer is not None:
            return self._signer(href)
        return self.signer.sign(href, collection)

    # --- search -----------------------------------------------------------------------------
    def _query(self, aoi: Aoi, start: str | None, end: str | None) -> dict[str, Any]:
        geom = mapping(aoi.geometry)
        return {"api": self.api_url, "collections": list(self.collections),
                "intersects": _round_coords(geom), "datetime": f"{start or '..'}/{end or '..'}"}

    def search_items(self, aoi: Aoi, start: str | None = None,
                     end: str | None = None) -> list[dict[str, Any]]:
        """STAC items (dicts, unsigned hrefs) that intersect the AOI in the date range.

        Served from the cache when the same search was made less than ``search_ttl_h`` ago
        (always, when offline).

        Raises
        ------
        CacheMissError
            Offline and this search was never made.
        NetworkError
            The API could not be reached after retries.
        """
        query = self._query(aoi, start, end)
        qh = query_hash(query)
        ttl = None if self.offline else self.search_ttl_h * 3600.0
        items = self.cache.get_search(qh, max_age_s=ttl)
        if items is not None:
            log.info("search: %d items from the cache (%s)", len(items), redact(self.api_url))
            return items
        if self.offline:
            raise CacheMissError(
                f"offline: the cache {self.cache.root} has no search of {redact(self.api_url)} "
                f"collections={','.join(self.collections)} datetime={query['datetime']} for AOI "
                f"{aoi.name!r}; run once online (without --offline) to fill it"
            )
        items = call_with_retries(
            lambda: self._search_online(query), what=f"STAC search {self.api_url}",
            policy=self.policy, retry_on=_retryable_types(),
        )
        self.cache.put_search(qh, query, items)
        log.info("search: %d items from %s", len(items), redact(self.api_url))
        return items

    def _search_online(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        from pystac.errors import STACError
        from pystac_client import Client
        from pystac_client.exceptions import APIError
        from pystac_client.stac_api_io import StacApiIO

        # every API call (root, conformance, search pages) is retried by urllib3 inside
        # pystac-client's StacApiIO: backoff, Retry-After honoured. Hrefs are stored unsigned,
        # so the search does not sign them (signing happens before each read).

        io = StacApiIO(timeout=self.policy.timeout_s, max_retries=api_retry(self.policy))
        out: list[dict[str, Any]] = []
        try:
            # the timeout again here: Client.open sets the StacApiIO's timeout to its own
            # (None: wait for ever) unless it is given
            client = Client.open(self.api_url, stac_io=io, timeout=self.policy.timeout_s)
            search = client.search(collections=list(self.collections),
                                   intersects=query["intersects"], datetime=query["datetime"],
                                   limit=100)
            for it in search.items_as_dicts():
                for a in it.get("assets", {}).values():
                    if "href" in a:
                        a["href"] = strip_query(str(a["href"]))
                out.append(it)
        except (APIError, STACError) as err:
            # pystac resolves the root link lazily and wraps that request's APIError in a
            # STACError ("does not resolve to a STAC object"): judge the request's own error
            cause = err if isinstance(err, APIError) else err.__cause__
            raise self._api_error(cause if isinstance(cause, APIError) else err) from None
        return out

    def _api_error(self, err: BaseException) -> BaseException:
        """What a pystac-client error means once urllib3's retries are spent (or not)."""
        status = getattr(err, "status_code", None)
        text = " ".join(str(err).split())
        url = redact(self.api_url)
        n = self.policy.max_retries + 1
        if (status is None and "Max retries exceeded" in text) or status in RETRY_STATUS:
            what = f"HTTP {status}" if status else one_line(redact(text), 200)
            return NetworkError(f"STAC search {url}: failed after {n} attempts ({what}); check "
                                "the network and the API URL, or run with --offline to use "
                                "the cache")
        if isinstance(status, int):
            detail = one_line(redact(text), 200)
            return SourceError(f"STAC search {url}: HTTP {status} ({detail}); check "
                               "[source] api and collections")
        return err  # e.g. an answer cut off mid-body: retried by call_with_retries

    def candidates(self, aoi: Aoi, start: str | None = None,
                   end: str | None = None) -> list[Scene]:
        """Every usable item with its AOI cloud and valid fractions, and its selection fate.

        ``properties`` gains ``aoi_cloud_frac``, ``valid_frac``, ``nodata_frac``,
        ``aoi_snow_frac``, ``selected`` and ``reject_reason``.
        """
        scenes = self._usable_scenes(self.search_items(aoi, start, end))
        grids: dict[str, tuple[Grid, NDArray[np.bool_], NDArray[np.bool_]]] = {}
        ordered = sorted(scenes, key=lambda s: (s.date, s.id))
        for s in ordered:
            mission = str(s.properties["mission"])
            if mission not in grids:
                grids[mission] = self._qa_grid(aoi, mission)
        if self.offline:
            self._raise_if_missing({s.id: self.missing_windows(s, grids[str(
                s.properties["mission"])][0], ["qa"]) for s in ordered})

        qa_arrays: dict[str, _Window] = {}

        def measure(s: Scene) -> None:
            mission = str(s.properties["mission"])
            grid, inside, on_buildings = grids[mission]
            w = self._window(s, "qa", grid, Resampling.nearest)
            qa_arrays[s.id] = w
            kind = "qa_pixel" if mission == "landsat" else "scl"
            q = qa_fractions(w.data, kind=kind, inside=inside, read_valid=w.valid)
            s.properties.update(q.to_dict())
            qb = qa_fractions(w.data, kind=kind, inside=on_buildings, read_valid=w.valid)
            s.properties["buildings_cloud_frac"] = round(qb.aoi_cloud_frac, 4)
            s.properties["buildings_valid_frac"] = round(qb.valid_frac, 4)
            s.properties["buildings_region"] = ("buildings" if self.buildings is not None
                                                else "aoi (no buffer)")
            s.properties["qa_res_m"] = grid.res_m
            s.properties["aoi_buffer_m"] = self.aoi_buffer_m

        # QA windows are small and latency-bound: read several at once (GDAL releases the GIL)
        if self.max_workers > 1 and len(ordered) > 1 and not self.offline:
            with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
                list(pool.map(measure, ordered))
        else:
            for s in ordered:
                measure(s)
        for mission, (_, inside, on_buildings) in grids.items():
            group = [s for s in ordered if s.properties["mission"] == mission]
            self._discount_persistent_cloud(group, qa_arrays, mission, inside, on_buildings)
        select_scenes(scenes, period=self.period, max_cloud_frac=self.max_cloud_frac,
                      min_valid_frac=self.min_valid_frac)
        return sorted(scenes, key=lambda s: (s.date, s.id))

    def _usable_scenes(self, items: list[dict[str, Any]]) -> list[Scene]:
        """Scenes of the items that have every needed asset; says once per item what is not."""
        scenes: list[Scene] = []
        refused: list[str] = []
        for it in items:
            try:
                s = scene_from_item(it, api=self.api_url)
            except SourceError as err:
                log.warning("%s; skipped", err)
                refused.append(str(err))
                continue
            if s.properties["missing_assets"]:
                log.info("STAC item %s has no asset for %s (optional; read without it)", s.id,
                         ", ".join(s.properties["missing_assets"]))
            scenes.append(s)
        if items and not scenes:
            raise NoImageryError(
                f"{len(items)} STAC items matched but none is usable: {refused[0]}"
                + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else "")
            )
        return scenes

    def _raise_if_missing(self, missing: dict[str, list[str]]) -> None:
        """Offline: one CacheMissError listing every missing window, grouped by scene."""
        missing = {k: v for k, v in missing.items() if v}
        if not missing:
            return
        n = sum(len(v) for v in missing.values())
        groups = "; ".join(f"{sid}: {', '.join(sorted(set(v)))}" for sid, v in missing.items())
        raise CacheMissError(
            f"offline: {n} windows of {len(missing)} scenes are not cached in {self.cache.root} "
            f"({groups}); run once online (without --offline) to fill them"
        )

    @staticmethod
    def _discount_persistent_cloud(group: list[Scene], qa: dict[str, _Window], mission: str,
                                   inside: NDArray[np.bool_],
                                   on_buildings: NDArray[np.bool_]) -> None:
        """Recount cloud without pixels that are 'cloud' on most clear dates (bright roofs)."""
        if len(group) < _BRIGHT_MIN_DATES:
            return
        masks = [landsat_qa_masks(qa[s.id].data) if mission == "landsat"
                 else scl_masks(qa[s.id].data) for s in group]
        cloud = np.stack([m.cloud & qa[s.id].valid for m, s in zip(masks, group, strict=True)])
        clear = np.array([float(s.properties["aoi_cloud_frac"]) <= _CLEAR_DATE_MAX_CLOUD
                          for s in group])
        persistent = persistent_cloud_mask(cloud, clear, min_dates=_BRIGHT_MIN_DATES) & inside
        n = int(persistent.sum())
        if not n:
            return
        kind = "qa_pixel" if mission == "landsat" else "scl"
        for s in group:
            raw = s.properties["aoi_cloud_frac"]
            w = qa[s.id]
            q = qa_fractions(w.data, kind=kind, inside=inside, read_valid=w.valid,
                             ignore_cloud=persistent)
            s.properties.update(q.to_dict())
            qb = qa_fractions(w.data, kind=kind, inside=on_buildings, read_valid=w.valid,
                              ignore_cloud=persistent)
            s.properties["buildings_cloud_frac"] = round(qb.aoi_cloud_frac, 4)
            s.properties["buildings_valid_frac"] = round(qb.valid_frac, 4)
            s.properties["aoi_cloud_frac_raw"] = raw
            s.properties["n_persistent_cloud_px"] = n
        log.info("qa: %d QA pixels are 'cloud' on most clear dates (bright roofs?); not counted "
                 "as cloud when choosing scenes", n)

    def search(self, aoi: Aoi, start: str | None = None, end: str | None = None) -> list[Scene]:
        """Return the best scene per period for ``aoi`` between ``start`` and ``end``, by date.

        Raises
        ------
        NoImageryError
            No item matched, or none passed the cloud / valid-data thresholds.
        """
        cands = self.candidates(aoi, start, end)
        if not cands:
            raise NoImageryError(
                f"no STAC items in {','.join(self.collections)} at {redact(self.api_url)} for "
                f"AOI {aoi.name!r} between {start or '..'} and {end or '..'}; widen the dates "
                "or check the collections"
            )
        chosen = [s for s in cands if s.properties.get("selected")]
        if not chosen:
            best = min(float(s.properties.get("aoi_cloud_frac", 1.0)) for s in cands)
            raise NoImageryError(
                f"{len(cands)} scenes for AOI {aoi.name!r} but none with AOI cloud fraction <= "
                f"{self.max_cloud_frac} and valid fraction >= {self.min_valid_frac} (best cloud "
                f"fraction {best:.2f}); raise [source] max_cloud_frac or widen the dates"
            )
        self._selected = chosen
        self._bright.clear()
        log.info("search: %d candidates, %d chosen (best per %s)", len(cands), len(chosen),
                 self.period)
        return chosen

    def _qa_grid(self, aoi: Aoi,
                 mission: str) -> tuple[Grid, NDArray[np.bool_], NDArray[np.bool_]]:
        """QA grid; pixels inside the AOI + buffer; pixels on the buildings (or the bare AOI)."""
        grid = grid_for_aoi(aoi.geometry, _QA_RES_M[mission], buffer_m=self.aoi_buffer_m)
        aoi_poly = to_crs(aoi.geometry, "EPSG:4326", grid.crs)
        poly = aoi_poly.buffer(self.aoi_buffer_m) if self.aoi_buffer_m else aoi_poly
        b = aoi_poly if self.buildings is None else to_crs(self.buildings, "EPSG:4326", grid.crs)
        masks = [np.asarray(geometry_mask([mapping(g)], out_shape=grid.shape,
                                          transform=grid.transform, invert=True,
                                          all_touched=True), dtype=bool) for g in (poly, b)]
        return grid, masks[0], masks[1]

    # --- windows ----------------------------------------------------------------------------
    def _key(self, scene: Scene, role: str) -> tuple[str, str, str]:
        keys = scene.properties.get("asset_keys") or {}
        return (str(scene.properties.get("collection") or ""), scene.id,
                str(keys.get(role, role)))

    def missing_windows(self, scene: Scene, grid: Grid, roles: Sequence[str]) -> list[str]:
        """``item/asset@grid`` for each window of ``roles`` that the cache lacks."""
        out = []
        for role in roles:
            res = Resampling.nearest if role == "qa" else Resampling.bilinear
            col, iid, asset = self._key(scene, role)
            gh = grid_hash(grid, extra=res.name)
            if not self.cache.has_window(col, iid, asset, gh):
                out.append(f"{iid}/{asset}@{gh}")
        return out

    def _window(self, scene: Scene, role: str, grid: Grid, resampling: Resampling) -> _Window:
        col, iid, asset = self._key(scene, role)
        gh = grid_hash(grid, extra=resampling.name)
        hit = self.cache.get_window(col, iid, asset, gh)
        if hit is not None:
            return _Window(data=hit[0], valid=hit[1])
        if self.offline:
            raise CacheMissError(
                f"offline: the cache {self.cache.root} lacks {iid}/{asset}@{gh}; run once "
                "online (without --offline) to fill it"
            )
        href = scene.assets[role]

        def attempt() -> GeoArray:
            path = gdal_href(self._sign(href, col))
            return read_to_grid(path, grid, date=scene.date, source_id=scene.id, bands=[1],
                                roles=[role], resampling=resampling,
                                env=_gdal_env(self.policy, href))

        try:
            ga = call_with_retries(attempt, what=f"read {iid} {asset} ({href})",
                                   policy=self.policy, retry_on=(SourceError, OSError),
                                   before_retry=lambda: clear_vsicurl_cache(gdal_href(href)))
            data, valid = ga.data[0], ga.valid
        except NoImageryError:
            data = np.zeros(grid.shape, np.float32)
            valid = np.zeros(grid.shape, bool)
        valid = valid & (data != 0)  # DN 0 is nodata in both S2 L2A and Landsat C2 L2
        self.cache.put_window(col, iid, asset, gh, data, valid, source=href)
        return _Window(data=data, valid=valid)

    # --- read -------------------------------------------------------------------------------
    def read(self, scene: Scene, grid: Grid) -> GeoArray:
        """Read ``scene`` onto ``grid`` as reflectance (float32, 0..1), with a cloud-free mask.

        Raises
        ------
        CacheMissError
            Offline and some windows of this scene are not cached (all of them are listed).
        NetworkError
            A COG could not be read after retries.
        """
        roles = [r for r in BANDS if r in scene.assets]
        if self.offline:  # list every window the run needs, not only this scene's first
            others = [o for o in self._selected if o.id != scene.id]
            self._raise_if_missing({o.id: self.missing_windows(
                o, grid, [r for r in (*BANDS, "qa") if r in o.assets]) for o in [scene, *others]})
        scale = float(scene.properties.get("reflectance_scale", 1.0 / _S2_QUANTIFICATION))
        offset = self._offset_for(scene, grid)
        data = np.empty((len(roles), *grid.shape), np.float32)
        bands_ok = np.ones(grid.shape, bool)
        for i, role in enumerate(roles):
            w = self._window(scene, role, grid, Resampling.bilinear)
            data[i] = w.data * np.float32(scale) + np.float32(offset)
            bands_ok &= w.valid
        qa = self._window(scene, "qa", grid, Resampling.nearest)
        masks = (landsat_qa_masks(qa.data) if scene.properties.get("mission") == "landsat"
                 else scl_masks(qa.data))
        valid = bands_ok & qa.valid & masks.valid
        bright = self._bright_stable(grid)
        n_lifted = 0
        if bright is not None:
            lift = bright & masks.cloud & bands_ok & qa.valid & ~valid
            n_lifted = int(lift.sum())
            valid |= lift
        scene.properties["n_bright_stable_px"] = n_lifted
        valid |= self._false_cloud_rescue(scene, grid, masks.cloud & bands_ok & qa.valid & ~valid)
        scene.properties["boa_offset_applied"] = str(
            scene.properties.get("boa_offset_applied_by")).startswith(("factorywatch", "provider"))
        data[:, ~valid] = 0.0
        return GeoArray(data=data, valid=valid, grid=grid, date=scene.date, bands=tuple(roles),
                        source_id=scene.id, kind="multispectral")

    def _offset_for(self, scene: Scene, grid: Grid) -> float:
        """The reflectance offset to use, after checking the pixels against the metadata.

        Both ways: an item that says the +1000 DN offset is in the data while the pixels have
        none (Earth Search mislabels, earth-search#66/#71), and one that says it was removed
        while the pixels still carry it. The evidence is kept in ``boa_offset_check``.
        """
        p = scene.properties
        offset = float(p.get("reflectance_offset", 0.0))
        by = p.get("boa_offset_applied_by")
        if p.get("mission") == "landsat" or by not in ("factorywatch", "provider"):
            return offset
        vis = [self._window(scene, r, grid, Resampling.bilinear) for r in ("blue", "green", "red")]
        ok = vis[0].valid & vis[1].valid & vis[2].valid
        ev = boa_offset_evidence([w.data for w in vis], ok)
        p["boa_offset_check"] = ev
        p["boa_offset_check_frac"] = ev["frac_below_1000"]
        if by == "factorywatch" and ev["verdict"] == "removed":
            log.warning("%s: %.1f %% of visible DNs are below 1000 although the metadata says the "
                        "BOA offset is still in the data; treating the pixels as already "
                        "harmonised", scene.id, 100 * float(ev["frac_below_1000"] or 0.0))
            p["boa_offset_applied_by"] = "provider (inferred from the pixels)"
            p["reflectance_offset"] = 0.0
        elif by == "provider" and ev["verdict"] == "present":
            log.warning("%s: no visible DN is below 1000 and the darkest 1 %% sit at %s although "
                        "the metadata says the BOA offset was removed; subtracting it",
                        scene.id, ev["dark_p01_dn"])
            p["boa_offset_applied_by"] = "factorywatch (inferred from the pixels)"
            p["reflectance_offset"] = _S2_BOA_ADD_OFFSET / _S2_QUANTIFICATION
            p["boa_add_offset"] = _S2_BOA_ADD_OFFSET
        elif ev["verdict"] == "undecidable":
            log.info("%s: the pixels cannot confirm the BOA-offset metadata (%s); kept",
                     scene.id, ev)
        return float(p["reflectance_offset"])

    def _visible(self, s: Scene, grid: Grid) -> _Visible:
        """Visible reflectance (3, rows, cols) of ``s``; data, clear and cloud-labelled masks.

        Memoised per (scene, grid), read-only, up to :data:`_VISIBLE_MEMO_BYTES`: the cloud-QA
        rescue of every scene compares it with every other selected date, so without the memo
        a series of n dates decoded its cached windows n² times.
        """
        key = (s.id, grid_hash(grid))
        with self._vis_lock:
            hit = self._vis.get(key)
            if hit is not None:
                self._vis.move_to_end(key)
                return hit
        got = self._read_visible(s, grid)
        for a in got:
            a.flags.writeable = False
        if sum(a.nbytes for a in got) > _VISIBLE_MEMO_BYTES:
            return got  # larger than the whole budget: not kept
        with self._vis_lock:
            self._vis[key] = got
            while sum(a.nbytes for v in self._vis.values() for a in v) > _VISIBLE_MEMO_BYTES:
                self._vis.popitem(last=False)
        return got

    def _read_visible(self, s: Scene, grid: Grid) -> _Visible:
        scale = float(s.properties.get("reflectance_scale", 1e-4))
        offset = self._offset_for(s, grid)
        vis = [self._window(s, r, grid, Resampling.bilinear) for r in ("blue", "green", "red")]
        qa = self._window(s, "qa", grid, Resampling.nearest)
        m = (landsat_qa_masks(qa.data) if s.properties.get("mission") == "landsat"
             else scl_masks(qa.data))
        ok = vis[0].valid & vis[1].valid & vis[2].valid & qa.valid
        refl = np.stack([w.data for w in vis]).astype(np.float64) * scale + offset
        return refl, ok, ok & m.valid, ok & m.cloud

    def _false_cloud_rescue(self, scene: Scene, grid: Grid,
                            masked: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Cloud-masked pixels of ``scene`` that are a roof seen clear on other selected dates."""
        none = np.zeros(grid.shape, dtype=bool)
        others = [o for o in self._selected if o.id != scene.id]
        scene.properties["n_false_cloud_roof_px"] = 0
        if not masked.any() or not others:
            return none
        refl = self._visible(scene, grid)[0]
        got = [self._visible(o, grid) for o in others]
        foot = None
        if self.buildings is not None:
            b = to_crs(self.buildings, "EPSG:4326", grid.crs)
            foot = geometry_mask([mapping(b)], out_shape=grid.shape, transform=grid.transform,
                                 invert=True)
        rescue, used = false_cloud_roof_mask(refl, masked, np.stack([g[0] for g in got]),
                                             np.stack([g[2] for g in got]), footprint=foot)
        n = int(rescue.sum())
        scene.properties["n_false_cloud_roof_px"] = n
        scene.properties["false_cloud_roof_evidence"] = [
            o.date for o, u in zip(others, used, strict=True) if u]
        if n:
            log.info("%s: %d pixels masked as cloud on this date only are a roof seen clear on "
                     "%s; kept valid", scene.id, n, ", ".join(
                         scene.properties["false_cloud_roof_evidence"]))
        return rescue

    def _bright_stable(self, grid: Grid) -> NDArray[np.bool_] | None:
        """Pixels masked as cloud on several selected dates that are bright and stable."""
        if len(self._selected) < _BRIGHT_MIN_DATES:
            return None
        gh = grid_hash(grid)
        if gh in self._bright:
            return self._bright[gh]
        bright = []
        masked = []
        for s in self._selected:
            refl, ok, _, cloud = self._visible(s, grid)
            bright.append(np.where(ok, refl.mean(axis=0), np.nan))
            masked.append(cloud)
        mask = bright_stable_mask(np.stack(bright), np.stack(masked),
                                  np.ones(len(self._selected), bool),
                                  min_dates=_BRIGHT_MIN_DATES)
        if mask.any():
            log.info("qa: %d pixels masked as cloud on >= %d dates are bright and stable "
                     "(roofs, not clouds); kept valid", int(mask.sum()), _BRIGHT_MIN_DATES)
        self._bright[gh] = mask
        return mask


def _round_coords(obj: Any, nd: int = 7) -> Any:
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, (list, tuple)):
        return [_round_coords(v, nd) for v in obj]
    if isinstance(obj, dict):
        return {k: _round_coords(v, nd) for k, v in obj.items()}
    return obj


def _retryable_types() -> tuple[type[BaseException], ...]:
    from pystac.errors import STACError
    from pystac_client.exceptions import APIError

    return (OSError, APIError, STACError)


def _gdal_env(policy: RetryPolicy, href: str) -> dict[str, Any]:
    """GDAL options of one remote read: timeouts and GDAL's own HTTP retries from ``policy``."""
    t = max(1, math.ceil(policy.timeout_s))
    opts: dict[str, Any] = {"GDAL_HTTP_TIMEOUT": str(t),
                            "GDAL_HTTP_CONNECTTIMEOUT": str(min(t, 10)),
                            **gdal_retry_env(policy)}
    if href.startswith("s3://"):
        opts["AWS_REQUEST_PAYER"] = "requester"  # e.g. s3://usgs-landsat (AWS credentials needed)
    return opts
