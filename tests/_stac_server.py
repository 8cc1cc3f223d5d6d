"""A real loopback HTTP server for the STAC tests: a STAC API plus COG assets with Range support.

Started by the test session on 127.0.0.1 (a random free port). It serves

- ``/`` (landing page), ``/conformance``, ``/collections``, ``/collections/<id>``,
  ``/collections/<id>/items/<item>``;
- ``/search`` by POST and GET, with ``bbox``/``intersects``, ``datetime``, ``collections`` and
  pagination through a ``next`` link (``token``);
- ``/assets/<name>``: files from a folder, with ``HEAD``, single and multi ``Range`` requests
  (``206``, ``Content-Range``, ``multipart/byteranges``).

Items are shaped like the real Earth Search v1 / Planetary Computer items in
``shared/data/stac_examples``. Faults can be injected per path prefix: ``500`` responses,
connections dropped mid-body, and slow responses. Every request is counted, so that tests can
prove a second run talks to nobody.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import shapely
from shapely.geometry import box, shape

__all__ = [
    "DEFAULT_SPECS",
    "NEW_ROOF_REFL",
    "Chaos",
    "Fault",
    "SceneSpec",
    "StacServer",
    "aoi_geometry_4326",
    "landsat_truth",
    "make_landsat_scene",
    "make_scene",
    "reflectance_truth",
    "serve_scenario",
    "stac",
    "stac_server",
]

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


@dataclass
class Fault:
    """A fault applied to the next ``times`` requests whose path starts with ``prefix``."""

    prefix: str
    kind: str
    """``500``/``503`` (server error, with ``Retry-After``), ``drop`` (close mid-body),
    ``slow`` (sleep, then answer)."""
    times: int = 1
    delay_s: float = 2.0
    retry_after_s: float | None = None
    """``Retry-After`` header sent with a ``500``/``503`` (seconds); none if None."""


@dataclass
class Chaos:
    """Random faults on every request (seeded): server errors and dropped connections."""

    error_rate: float = 0.0
    """Share of requests answered 500 or 503 (half each), with ``Retry-After: 0``."""
    drop_rate: float = 0.0
    """Share of GET/POST requests whose connection is closed halfway through the body."""
    seed: int = 0
    prefix: str = "/"


@dataclass
class _State:
    items: list[dict[str, Any]] = field(default_factory=list)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    asset_dir: Path | None = None
    faults: list[Fault] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    bytes_sent: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
    chaos: Chaos | None = None
    rng: Any = None
    sas_tokens: dict[str, str] = field(default_factory=dict)
    """collection -> token that ``/assets/`` requires (as the query string) when non-empty;
    ``/api/sas/v1/token/<collection>`` hands it out (Planetary-Computer style)."""
    ranges: list[tuple[str, int, int]] = field(default_factory=list)
    """Every byte range of an asset that was sent: (path, first byte, last byte)."""
    page_size: int = 2
    lock: threading.Lock = field(default_factory=threading.Lock)


def _parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    m = re.fullmatch(r"\s*bytes=(.+)", header)
    if not m:
        return None
    out: list[tuple[int, int]] = []
    for part in m.group(1).split(","):
        a, _, b = part.strip().partition("-")
        if a == "":
            n = int(b)
            start, end = max(0, size - n), size - 1
        else:
            start = int(a)
            end = min(int(b), size - 1) if b else size - 1
        if start > end or start >= size:
            continue
        out.append((start, end))
    return out


def _item_datetime(item: dict[str, Any]) -> str:
    return str(item["properties"]["datetime"])


def _dt_match(dt: str, spec: str | None) -> bool:
    if not spec:
        return True
    if "/" not in spec:
        return dt[:10] == spec[:10]
    a, b = spec.split("/")
    if a not in ("", "..") and dt < a:
        return False
    return not (b not in ("", "..") and dt > b)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms on Linux) on every keep-alive response
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing -------------------------------------------------------------------------
    @property
    def st(self) -> _State:
        return self.server.state

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _fault(self, path: str) -> Fault | None:
        with self.st.lock:
            self.st.counts[path] += 1
            self.st.log.append(f"{self.command} {self.path} {self.headers.get('Range', '')}")
            for f in self.st.faults:
                if f.kind == "drop" and self.command == "HEAD":
                    continue
                if f.times > 0 and path.startswith(f.prefix):
                    f.times -= 1
                    return f
            c = self.st.chaos
            if c is not None and path.startswith(c.prefix):
                u = float(self.st.rng.random())
                if u < c.error_rate:
                    return Fault(prefix=path, kind="500" if u < c.error_rate / 2 else "503",
                                 retry_after_s=0)
                if u < c.error_rate + c.drop_rate and self.command != "HEAD":
                    return Fault(prefix=path, kind="drop")
        return None

    def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
              fault: Fault | None = None) -> None:
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if fault is not None and fault.kind in ("500", "503"):
            msg = b'{"code": "InternalServerError", "description": "injected"}'
            self.send_response(int(fault.kind))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            if fault.retry_after_s is not None:
                self.send_header("Retry-After", f"{fault.retry_after_s:g}")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(msg)
            return
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        with self.st.lock:
            self.st.bytes_sent[urlparse(self.path).path] += len(body)
        if fault is not None and fault.kind == "drop" and len(body) > 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def _json(self, obj: Any, fault: Fault | None, code: int = 200,
              ctype: str = "application/json") -> None:
        self._send(code, json.dumps(obj).encode(), ctype, fault=fault)

    # --- STAC API -------------------------------------------------------------------------
    def _landing(self) -> dict[str, Any]:
        b = self._base()
        return {
            "type": "Catalog", "id": "loopback-stac", "stac_version": "1.0.0",
            "description": "test STAC API", "conformsTo": CONFORMS,
            "links": [
                {"rel": "self", "href": f"{b}/", "type": "application/json"},
                {"rel": "root", "href": f"{b}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{b}/conformance", "type": "application/json"},
                {"rel": "data", "href": f"{b}/collections", "type": "application/json"},
                {"rel": "search", "href": f"{b}/search", "type": "application/geo+json",
                 "method": "GET"},
                {"rel": "search", "href": f"{b}/search", "type": "application/geo+json",
                 "method": "POST"},
            ],
        }

    def _search(self, params: dict[str, Any], method: str) -> dict[str, Any]:
        cols = params.get("collections")
        if isinstance(cols, str):
            cols = cols.split(",")
        geom = None
        if params.get("intersects"):
            it = params["intersects"]
            geom = shape(json.loads(it) if isinstance(it, str) else it)
        elif params.get("bbox"):
            bb = params["bbox"]
            geom = box(*[float(v) for v in (bb.split(",") if isinstance(bb, str) else bb)])
        hits = []
        for it in self.st.items:
            if cols and it["collection"] not in cols:
                continue
            if geom is not None and not shapely.intersects(shape(it["geometry"]), geom):
                continue
            if not _dt_match(_item_datetime(it), params.get("datetime")):
                continue
            hits.append(it)
        hits.sort(key=_item_datetime, reverse=True)
        limit = min(int(params.get("limit") or self.st.page_size), self.st.page_size)
        start = int(params.get("token") or 0)
        page = hits[start: start + limit]
        links: list[dict[str, Any]] = []
        if start + limit < len(hits):
            nxt = start + limit
            if method == "POST":
                body = {k: v for k, v in params.items() if k != "token"}
                body["token"] = str(nxt)
                links.append({"rel": "next", "href": f"{self._base()}/search", "method": "POST",
                              "body": body, "merge": False, "type": "application/geo+json"})
            else:
                q = self.path.split("?", 1)[1] if "?" in self.path else ""
                q = re.sub(r"(^|&)token=[^&]*", "", q).lstrip("&")
                links.append({"rel": "next", "type": "application/geo+json",
                              "href": f"{self._base()}/search?{q}&token={nxt}"})
        return {"type": "FeatureCollection", "features": page, "links": links,
                "numberMatched": len(hits), "numberReturned": len(page)}

    # --- assets ---------------------------------------------------------------------------
    def _asset(self, name: str, fault: Fault | None) -> None:
        assert self.st.asset_dir is not None
        if self.st.sas_tokens:
            query = urlparse(self.path).query
            if query not in self.st.sas_tokens.values():
                msg = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>PublicAccessNotPermitt'
                       b"ed</Code><Message>Public access is not permitted on this storage account."
                       b"</Message></Error>")
                self._send(409, msg, "application/xml", fault=fault)
                return
        p = self.st.asset_dir / name
        if not p.is_file() or ".." in name:
            self._send(404, b"not found", "text/plain", fault=fault)
            return
        data = p.read_bytes()
        size = len(data)
        hdr = self.headers.get("Range")
        ranges = _parse_ranges(hdr, size) if hdr else None
        base = {"Accept-Ranges": "bytes"}
        with self.st.lock:
            if self.command != "HEAD" and (fault is None or fault.kind == "slow"):
                self.st.ranges.extend((name, a, b) for a, b in (ranges or [(0, size - 1)]))
        if not ranges:
            self._send(200, data, "image/tiff", base, fault=fault)
            return
        if len(ranges) == 1:
            a, b = ranges[0]
            self._send(206, data[a: b + 1], "image/tiff",
                       {**base, "Content-Range": f"bytes {a}-{b}/{size}"}, fault=fault)
            return
        boundary = "fwboundary"
        parts = []
        for a, b in ranges:
            parts.append(
                f"--{boundary}\r\nContent-Type: image/tiff\r\n"
                f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n".encode() + data[a: b + 1] + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        self._send(206, body, f"multipart/byteranges; boundary={boundary}", base, fault=fault)

    # --- dispatch -------------------------------------------------------------------------
    def _route(self, body: dict[str, Any] | None) -> None:
        u = urlparse(self.path)
        path = u.path.rstrip("/") or "/"
        fault = self._fault(path)
        if path.startswith("/assets/"):
            self._asset(path[len("/assets/"):], fault)
            return
        if path.startswith("/api/sas/v1/token/"):
            token = self.st.sas_tokens.get(path.rsplit("/", 1)[-1])
            if token is None:
                self._json({"detail": "unknown collection"}, fault, 404)
            else:
                self._json({"msft:expiry": "2099-01-01T00:00:00Z", "token": token}, fault)
        elif path == "/":
            self._json(self._landing(), fault)
        elif path == "/conformance":
            self._json({"conformsTo": CONFORMS}, fault)
        elif path == "/collections":
            self._json({"collections": list(self.st.collections.values()), "links": []}, fault)
        elif path.startswith("/collections/"):
            parts = path.split("/")
            col = self.st.collections.get(parts[2])
            if col is None:
                self._json({"code": "NotFound"}, fault, 404)
            elif len(parts) == 3:
                self._json(col, fault)
            else:
                item = next((i for i in self.st.items if i["id"] == parts[-1]), None)
                if item is None:
                    self._json({"code": "NotFound"}, fault, 404)
                else:
                    self._json(item, fault, ctype="application/geo+json")
        elif path == "/search":
            if body is None:
                params: dict[str, Any] = {k: v[0] for k, v in parse_qs(u.query).items()}
                self._json(self._search(params, "GET"), fault, ctype="application/geo+json")
            else:
                self._json(self._search(body, "POST"), fault, ctype="application/geo+json")
        else:
            self._json({"code": "NotFound"}, fault, 404)

    def do_GET(self) -> None:
        self._route(None)

    def do_HEAD(self) -> None:
        self._route(None)

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b"{}"
        self._route(json.loads(raw or b"{}"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class StacServer:
    """A loopback STAC API + COG server in a background thread.

    Examples
    --------
    >>> srv = StacServer(asset_dir)            # doctest: +SKIP
    >>> srv.url                                # 'http://127.0.0.1:PORT'
    """

    def __init__(self, asset_dir: Path) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.state = _State(asset_dir=asset_dir)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def state(self) -> _State:
        return self._httpd.state

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def asset_url(self, name: str) -> str:
        return f"{self.url}/assets/{name}"

    def add_collection(self, cid: str) -> None:
        self.state.collections[cid] = {
            "type": "Collection", "id": cid, "stac_version": "1.0.0",
            "description": f"test {cid}", "license": "proprietary",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                       "temporal": {"interval": [["2015-06-27T00:00:00Z", None]]}},
            "links": [],
        }

    def add_item(self, item: dict[str, Any]) -> None:
        self.add_collection(item["collection"])
        self.state.items.append(item)

    def inject(self, prefix: str, kind: str, times: int = 1, delay_s: float = 2.0,
               retry_after_s: float | None = None) -> None:
        self.state.faults.append(Fault(prefix=prefix, kind=kind, times=times, delay_s=delay_s,
                                       retry_after_s=retry_after_s))

    def chaos(self, error_rate: float = 0.0, drop_rate: float = 0.0, seed: int = 0,
              prefix: str = "/") -> None:
        """Fail a random share of requests from now on (``error_rate=0, drop_rate=0``: stop)."""
        import numpy as np

        self.state.rng = np.random.default_rng(seed)
        self.state.chaos = Chaos(error_rate=error_rate, drop_rate=drop_rate, seed=seed,
                                 prefix=prefix)

    def require_sas_token(self, collection: str, token: str) -> None:
        """From now on assets need ``?<token>`` (got from the SAS endpoint); else HTTP 409."""
        self.state.sas_tokens[collection] = token

    def sas_url(self) -> str:
        """The Planetary-Computer-style token endpoint, with ``{collection}`` to fill in."""
        return f"{self.url}/api/sas/v1/token/{{collection}}"

    @property
    def n_requests(self) -> int:
        return sum(self.state.counts.values())

    def n_requests_to(self, prefix: str) -> int:
        return sum(n for p, n in self.state.counts.items() if p.startswith(prefix))

    def byte_stats(self) -> tuple[int, int]:
        """``(asset bytes sent, unique asset bytes among the ranges answered)`` since the start.

        Bytes sent count every asset body on the wire (halves of dropped answers and multipart
        framing included, ``HEAD`` answers have none); unique bytes are the union of the byte
        ranges answered in full, per file.
        """
        by_path: dict[str, list[tuple[int, int]]] = {}
        with self.state.lock:
            total = sum(n for p, n in self.state.bytes_sent.items() if p.startswith("/assets/"))
            for path, a, b in self.state.ranges:
                by_path.setdefault(path, []).append((a, b))
        unique = 0
        for spans in by_path.values():
            end = -1
            for a, b in sorted(spans):
                if b > end:
                    unique += b - max(a, end + 1) + 1
                    end = b
        return total, unique

    def answered_bytes(self) -> int:
        """Bytes of the asset ranges answered in full (repeats counted; cut-off answers not)."""
        with self.state.lock:
            return sum(b - a + 1 for _, a, b in self.state.ranges)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --- a synthetic scenario over Ryongsong (EPSG:32652), shaped like real items ----------------


def _find_stac_examples() -> Path:
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "stac_examples"
        if cand.is_dir():
            return cand
    return Path("/work/shared/data/stac_examples")


STAC_EXAMPLES = _find_stac_examples()
TEMPLATE_ITEM = (STAC_EXAMPLES / "earth_search_v1" / "sentinel-2-l2a"
                 / "S2A_13TDE_20231008_0_L2A.json")
CRS = "EPSG:32652"
TILE_LEFT, TILE_TOP, TILE_PX = 384000.0, 4421000.0, 256
"""The synthetic tile: 256 × 256 px at 10 m, edges on multiples of 20 m."""
BLOCK_PX = 128
"""COG block size of the synthetic assets."""
AOI_UTM = (384980.0, 4419420.0, 385580.0, 4420020.0)
"""A 600 m × 600 m AOI in the tile's middle, near 127.657 E 39.920 N (Ryongsong)."""
ROOF_UTM = (385100.0, 4419800.0, 385180.0, 4419880.0)
"""An 80 m × 80 m bright roof that SCL calls cloud on every date."""
BAND_FILES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11",
              "swir22": "B12"}
NEW_ROOF_REFL = {"blue": 0.32, "green": 0.33, "red": 0.34, "nir": 0.36, "swir16": 0.38,
                 "swir22": 0.36}
"""Reflectance of the new hall's roof (bright, grey, the same on every date it exists)."""
BAND_RES_M = {"blue": 10.0, "green": 10.0, "red": 10.0, "nir": 10.0, "swir16": 20.0,
              "swir22": 20.0}


def aoi_geometry_4326() -> Any:
    from pyproj import Transformer

    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = AOI_UTM
    return shapely.transform(box(minx, miny, maxx, maxy),
                             lambda x, y: tr.transform(x, y), interleaved=False)


def _tile_geometry_4326() -> Any:
    from pyproj import Transformer

    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    right = TILE_LEFT + TILE_PX * 10
    bottom = TILE_TOP - TILE_PX * 10
    return shapely.transform(box(TILE_LEFT, bottom, right, TILE_TOP),
                             lambda x, y: tr.transform(x, y), interleaved=False)


def _px_slices(bounds: tuple[float, float, float, float], res: float) -> tuple[slice, slice]:
    minx, miny, maxx, maxy = bounds
    r0, r1 = round((TILE_TOP - maxy) / res), round((TILE_TOP - miny) / res)
    c0, c1 = round((minx - TILE_LEFT) / res), round((maxx - TILE_LEFT) / res)
    return slice(r0, r1), slice(c0, c1)


def reflectance_truth(band: str, res: float, seed: int) -> Any:
    """Known surface reflectance of one band (0.02..0.4), smooth, different per band and date."""
    import numpy as np

    n = round(TILE_PX * 10 / res)
    rows, cols = np.mgrid[0:n, 0:n].astype("float64") * (res / 10.0)
    k = list(BAND_FILES).index(band)
    refl = 0.05 + 0.02 * k + 0.1 * (np.sin(rows / 23.0 + seed) * np.cos(cols / 31.0) + 1) / 2
    rr, cc = _px_slices(ROOF_UTM, res)
    refl[rr, cc] = 0.35  # the roof: bright and the same on every date
    return refl


def write_cog(path: Path, arr: Any, res: float) -> None:
    import rasterio
    from rasterio.transform import from_origin

    prof = {"driver": "COG", "width": arr.shape[1], "height": arr.shape[0], "count": 1,
            "dtype": arr.dtype.name, "crs": CRS, "nodata": 0,
            "transform": from_origin(TILE_LEFT, TILE_TOP, res, res),
            "blocksize": BLOCK_PX, "compress": "deflate", "overviews": "none"}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(arr, 1)


@dataclass
class SceneSpec:
    """One synthetic acquisition."""

    item_id: str
    date: str
    platform: str = "sentinel-2a"
    shape: str = "earth-search"
    """``earth-search`` (asset keys blue, scl...) or ``planetary-computer`` (B02, SCL...)."""
    baseline: str = "05.09"
    offset_applied_by_provider: bool | None = True
    cloud_utm: tuple[float, float, float, float] | None = None
    """A cloud (SCL 9) over this box, with bright, date-specific reflectance."""
    nodata_cols_frac: float = 0.0
    """Left fraction of the tile outside the swath (DN 0, SCL 0)."""
    seed: int = 0
    swir_res_m: float = 20.0
    dn_add: int | None = None
    """Override the DN offset actually in the pixels (to mislabel an item on purpose)."""
    omit_bands: tuple[str, ...] = ()
    """Band roles without an asset in the item (e.g. ``("swir22",)``: no B12)."""
    proj_code: bool = False
    """Say ``proj:code = "EPSG:32652"`` (STAC projection v2) instead of ``proj:epsg``."""
    new_roof_utm: tuple[float, float, float, float] | None = None
    """A new hall on this date: bright roof reflectance (0.32..0.36 by band) over this box."""
    false_cloud_utm: tuple[float, float, float, float] | None = None
    """SCL says cloud (9) over this box although the pixels are unchanged."""


def _template() -> dict[str, Any]:
    return json.loads(TEMPLATE_ITEM.read_text())


def make_scene(spec: SceneSpec, asset_dir: Path, base_url: str,
               collection: str = "sentinel-2-l2a") -> dict[str, Any]:
    """Write the COGs of one scene into ``asset_dir`` and return its STAC item (a dict)."""
    import numpy as np

    folder = asset_dir / spec.item_id
    folder.mkdir(parents=True, exist_ok=True)
    add = 1000 if (float(spec.baseline) >= 4 and not spec.offset_applied_by_provider) else 0
    if spec.dn_add is not None:
        add = spec.dn_add
    pc = spec.shape == "planetary-computer"
    assets: dict[str, Any] = {}
    tmpl = _template()
    for band, fname in BAND_FILES.items():
        if band in spec.omit_bands:
            continue
        res = spec.swir_res_m if band.startswith("swir") else BAND_RES_M[band]
        refl = reflectance_truth(band, res, spec.seed)
        if spec.new_roof_utm is not None:
            rr, cc = _px_slices(spec.new_roof_utm, res)
            refl[rr, cc] = NEW_ROOF_REFL[band]
        if spec.cloud_utm is not None:
            rr, cc = _px_slices(spec.cloud_utm, res)
            refl[rr, cc] = 0.6 + 0.1 * spec.seed
        dn = np.round(refl * 10000 + add).astype("uint16")
        if spec.nodata_cols_frac:
            dn[:, : int(dn.shape[1] * spec.nodata_cols_frac)] = 0
        write_cog(folder / f"{fname}.tif", dn, res)
        a = dict(tmpl["assets"][band])
        a["href"] = f"{base_url}/assets/{spec.item_id}/{fname}.tif"
        n = dn.shape[0]
        a["proj:shape"] = [n, n]
        a["proj:transform"] = [res, 0, TILE_LEFT, 0, -res, TILE_TOP]
        assets[fname if pc else band] = a
    scl = np.full((TILE_PX // 2, TILE_PX // 2), 4, dtype="uint8")
    scl[:, ::3] = 5
    rr, cc = _px_slices(ROOF_UTM, 20.0)
    scl[rr, cc] = 9  # the classifier calls the bright roof "cloud"
    if spec.cloud_utm is not None:
        rr, cc = _px_slices(spec.cloud_utm, 20.0)
        scl[rr, cc] = 9
        r0, r1 = rr.start, rr.stop
        scl[r1: r1 + 3, cc] = 3  # its shadow
        del r0
    if spec.false_cloud_utm is not None:
        rr, cc = _px_slices(spec.false_cloud_utm, 20.0)
        scl[rr, cc] = 9
    if spec.nodata_cols_frac:
        scl[:, : int(scl.shape[1] * spec.nodata_cols_frac)] = 0
    write_cog(folder / "SCL.tif", scl, 20.0)
    a = dict(tmpl["assets"]["scl"])
    a["href"] = f"{base_url}/assets/{spec.item_id}/SCL.tif"
    assets["SCL" if pc else "scl"] = a
    props = dict(tmpl["properties"])
    hhmmss = "021959"
    ymd = spec.date.replace("-", "")
    props.update({
        "datetime": f"{spec.date}T02:19:59.024000Z", "platform": spec.platform,
        "proj:epsg": 32652, "mgrs:utm_zone": 52, "mgrs:latitude_band": "S",
        "mgrs:grid_square": "CG", "grid:code": "MGRS-52SCG",
        "s2:processing_baseline": spec.baseline,
        "s2:product_uri": f"S2A_MSIL2A_{ymd}T{hhmmss}_N{spec.baseline.replace('.', '')}_R031_"
                          f"T52SCG_{ymd}T053000.SAFE",
        "s2:datatake_id": f"GS2A_{ymd}T{hhmmss}_000000_N{spec.baseline}",
        "view:sun_elevation": 55.0, "view:sun_azimuth": 150.0,
    })
    if spec.proj_code:
        props.pop("proj:epsg", None)
        props["proj:code"] = "EPSG:32652"
    if spec.offset_applied_by_provider is None:
        props.pop("earthsearch:boa_offset_applied", None)
    else:
        props["earthsearch:boa_offset_applied"] = spec.offset_applied_by_provider
    if pc:
        props["sat:relative_orbit"] = 31
        props["s2:mean_solar_zenith"] = 35.0
        props.pop("view:sun_elevation")
    geom = _tile_geometry_4326()
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": tmpl["stac_extensions"],
        "id": spec.item_id, "collection": collection, "bbox": list(geom.bounds),
        "geometry": shapely.geometry.mapping(geom), "properties": props, "assets": assets,
        "links": [{"rel": "self", "href": f"{base_url}/collections/{collection}/items/"
                   f"{spec.item_id}", "type": "application/geo+json"}],
    }


DEFAULT_SPECS = (
    SceneSpec(item_id="S2A_52SCG_20230410_0_L2A", date="2023-04-10", seed=0),
    SceneSpec(item_id="S2B_52SCG_20230420_0_L2A", date="2023-04-20", platform="sentinel-2b",
              cloud_utm=(384900.0, 4419300.0, 385700.0, 4420100.0), seed=1),
    SceneSpec(item_id="S2A_52SCG_20230510_0_L2A", date="2023-05-10", seed=2,
              cloud_utm=(385300.0, 4419500.0, 385400.0, 4419600.0)),
    SceneSpec(item_id="S2A_52SCG_20230510_1_L2A", date="2023-05-10", seed=2,
              nodata_cols_frac=0.45),
    SceneSpec(item_id="S2A_MSIL2A_20230715T021959_R031_T52SCG_20230715T053000",
              date="2023-07-15", shape="planetary-computer", baseline="05.09",
              offset_applied_by_provider=None, seed=3),
)
"""April: one clear and one cloudy scene; May: the same acquisition twice (one half outside the
swath), with a small cloud; July: a Planetary-Computer-shaped item whose DNs carry +1000."""


def serve_scenario(server: StacServer, asset_dir: Path,
                   specs: tuple[SceneSpec, ...] = DEFAULT_SPECS) -> list[dict[str, Any]]:
    items = [make_scene(s, asset_dir, server.url) for s in specs]
    for it in items:
        server.add_item(it)
    return items


# --- pytest fixtures (import them into a test module to use them) -----------------------------
import pytest  # noqa: E402  (fixtures below only)


@pytest.fixture(scope="module")
def stac_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A loopback STAC API serving :data:`DEFAULT_SPECS` (COGs written once per module)."""
    d = tmp_path_factory.mktemp("stac")
    srv = StacServer(d / "assets")
    serve_scenario(srv, d / "assets")
    yield srv
    srv.close()


@pytest.fixture
def stac(stac_server: StacServer, monkeypatch: pytest.MonkeyPatch) -> StacServer:
    """The module's server with no pending faults, and GDAL's in-process HTTP cache disabled.

    Without ``CPL_VSIL_CURL_NON_CACHED`` GDAL would answer repeated reads of the same URL from
    memory, and counting server requests would prove nothing about our disk cache.
    """
    monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{stac_server.url}")
    stac_server.state.faults.clear()
    return stac_server


LANDSAT_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22")


def landsat_truth(band: str) -> float:
    """Constant surface reflectance of a synthetic Landsat band (a constant survives bilinear)."""
    return 0.08 + 0.03 * LANDSAT_BANDS.index(band)


def make_landsat_scene(item_id: str, date: str, asset_dir: Path, base_url: str, *,
                       cloud_utm: tuple[float, float, float, float] | None = None
                       ) -> dict[str, Any]:
    """A Landsat C2 L2 scene (30 m, QA_PIXEL), shaped like a Planetary Computer item."""
    import numpy as np

    folder = asset_dir / item_id
    folder.mkdir(parents=True, exist_ok=True)
    n = 86  # 2580 m at 30 m
    assets: dict[str, Any] = {}
    for band in LANDSAT_BANDS:
        dn = np.full((n, n), round((landsat_truth(band) + 0.2) / 2.75e-5), dtype="uint16")
        write_cog(folder / f"{band}.tif", dn, 30.0)
        assets[band] = {"href": f"{base_url}/assets/{item_id}/{band}.tif",
                        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                        "roles": ["data"], "eo:bands": [{"common_name": band.rstrip("08")}],
                        "raster:bands": [{"scale": 2.75e-05, "offset": -0.2, "nodata": 0,
                                          "data_type": "uint16"}]}
    qa = np.full((n, n), 21824, dtype="uint16")  # clear land
    if cloud_utm is not None:
        rr, cc = _px_slices(cloud_utm, 30.0)
        qa[rr, cc] = 22280  # high-confidence cloud
    write_cog(folder / "qa_pixel.tif", qa, 30.0)
    assets["qa_pixel"] = {"href": f"{base_url}/assets/{item_id}/qa_pixel.tif",
                          "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                          "roles": ["cloud", "cloud-shadow", "clear", "snow-ice", "water"]}
    geom = _tile_geometry_4326()
    props = {"datetime": f"{date}T02:10:31.123000Z", "platform": "landsat-8",
             "instruments": ["oli", "tirs"], "landsat:wrs_path": "116", "landsat:wrs_row": "032",
             "landsat:collection_category": "T1", "view:off_nadir": 0,
             "view:sun_elevation": 58.2, "view:sun_azimuth": 141.0, "eo:cloud_cover": 3.1,
             "proj:epsg": 32652}
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id,
            "collection": "landsat-c2-l2", "bbox": list(geom.bounds),
            "geometry": shapely.geometry.mapping(geom), "properties": props, "assets": assets,
            "links": []}
