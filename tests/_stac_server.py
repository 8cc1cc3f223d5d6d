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

__all__ = ["Fault", "StacServer"]

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
    """``500`` (server error), ``drop`` (close mid-body), ``slow`` (sleep, then answer)."""
    times: int = 1
    delay_s: float = 2.0


@dataclass
class _State:
    items: list[dict[str, Any]] = field(default_factory=list)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    asset_dir: Path | None = None
    faults: list[Fault] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
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

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
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
        return None

    def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
              fault: Fault | None = None) -> None:
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if fault is not None and fault.kind == "500":
            msg = b'{"code": "InternalServerError", "description": "injected"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
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
        p = self.st.asset_dir / name
        if not p.is_file() or ".." in name:
            self._send(404, b"not found", "text/plain", fault=fault)
            return
        data = p.read_bytes()
        size = len(data)
        hdr = self.headers.get("Range")
        ranges = _parse_ranges(hdr, size) if hdr else None
        base = {"Accept-Ranges": "bytes"}
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
        if path == "/":
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

    def inject(self, prefix: str, kind: str, times: int = 1, delay_s: float = 2.0) -> None:
        self.state.faults.append(Fault(prefix=prefix, kind=kind, times=times, delay_s=delay_s))

    @property
    def n_requests(self) -> int:
        return sum(self.state.counts.values())

    def n_requests_to(self, prefix: str) -> int:
        return sum(n for p, n in self.state.counts.items() if p.startswith(prefix))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
