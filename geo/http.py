"""HTTP helpers for remote sources: retries with exponential backoff, and redaction of secrets.

Nothing here talks to the network by itself: :func:`call_with_retries` wraps a callable that
does, and :func:`redact` scrubs signed URLs and tokens out of any text before it is logged,
stored in ``run.json`` or put into an error message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from geo.errors import NetworkError, NoImageryError, SourceError, one_line

__all__ = [
    "RETRY_STATUS",
    "RetryPolicy",
    "api_retry",
    "call_with_retries",
    "clear_vsicurl_cache",
    "gdal_retry_env",
    "http_status",
    "install_log_redaction",
    "is_retryable",
    "redact",
    "strip_query",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_SECRET_KEYS = (
    "sig", "se", "st", "sp", "sv", "sr", "srt", "ss", "skoid", "sktid", "skt", "ske", "sks", "skv",
    "token", "access_token", "api_key", "apikey", "api-key", "subscription-key", "key", "code",
    "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
    "x-goog-credential", "password", "secret",
)
_URL_RE = re.compile(r"(?P<url>(?:/vsicurl/)?[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+)")
_QUERY_SECRET_RE = re.compile(
    r"(?i)(?:^|[?&;])(?:" + "|".join(re.escape(k) for k in _SECRET_KEYS) + r")="
)
_BARE_SECRET_RE = re.compile(
    r"(?i)\b(sig|token|access_token|x-amz-signature|x-amz-security-token|signature)=[^&\s\"']+"
)
_AUTH_RE = re.compile(
    r"(?i)(authorization|ocp-apim-subscription-key)(\s*[:=]\s*)(?:(?:bearer|basic)\s+)?[^\s,;\"']+"
)
_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def _redact_url(match: re.Match[str]) -> str:
    url = match.group("url")
    tail = ""
    while url and url[-1] in ".,;:)]}":
        url, tail = url[:-1], url[-1] + tail
    return _redact_one_url(url) + tail


def _redact_one_url(url: str) -> str:
    url = _USERINFO_RE.sub(r"\g<scheme>REDACTED@", url)
    base, sep, query = url.partition("?")
    if sep and _QUERY_SECRET_RE.search("?" + query):
        return f"{base}?REDACTED"
    return url


def redact(text: str) -> str:
    """Remove signed-URL query strings, tokens and credentials from ``text``.

    A URL whose query carries a signature or token (``sig=``, ``se=``, ``token=``,
    ``X-Amz-Signature=``, ...) loses its whole query string; user:password in a URL, and
    ``Authorization``-style header values, are replaced by ``REDACTED``.

    Examples
    --------
    >>> redact("read https://x.blob.core.windows.net/a/B04.tif?st=1&se=2&sig=abc%3D failed")
    'read https://x.blob.core.windows.net/a/B04.tif?REDACTED failed'
    >>> redact("https://earth-search.aws.element84.com/v1/search?limit=10")
    'https://earth-search.aws.element84.com/v1/search?limit=10'
    >>> redact("Authorization: Bearer abc.def")
    'Authorization: REDACTED'
    >>> redact("https://user:pw@host/x.tif")
    'https://REDACTED@host/x.tif'
    """
    out = _URL_RE.sub(_redact_url, text)
    out = _BARE_SECRET_RE.sub(lambda m: f"{m.group(1)}=REDACTED", out)
    return _AUTH_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}REDACTED", out)


def strip_query(href: str) -> str:
    """``href`` without its query string (for hrefs stored in caches and run.json).

    Examples
    --------
    >>> strip_query("https://a/b.tif?sig=1")
    'https://a/b.tif'
    """
    return href.split("?", 1)[0]


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a remote call."""

    max_retries: int = 4
    """Retries after the first attempt (so ``max_retries + 1`` attempts in all)."""
    backoff_s: float = 0.5
    """Delay before the first retry, in seconds; doubled after each retry."""
    max_backoff_s: float = 8.0
    """Upper bound on one delay, in seconds."""
    timeout_s: float = 30.0
    """Timeout of one request, in seconds (used by the callers)."""

    def delay_s(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based), in seconds.

        Examples
        --------
        >>> [RetryPolicy(backoff_s=0.5).delay_s(i) for i in (1, 2, 3, 10)]
        [0.5, 1.0, 2.0, 8.0]
        """
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))


RETRY_STATUS: tuple[int, ...] = (408, 429, 500, 502, 503, 504)
"""HTTP status codes worth retrying (for pystac-client's urllib3 ``Retry`` and GDAL)."""


def api_retry(policy: RetryPolicy) -> Any:
    """A urllib3 ``Retry`` for pystac-client's ``StacApiIO`` (every API call: root, search pages).

    Retries connection errors, read errors and :data:`RETRY_STATUS` answers on GET and POST,
    with exponential backoff (``policy.backoff_s`` doubling, at most ``policy.max_backoff_s``)
    and the server's ``Retry-After`` header honoured. After the last retry the last answer is
    returned (``raise_on_status=False``), so that pystac-client reports its HTTP status.
    """
    from urllib3.util.retry import Retry

    return Retry(
        total=policy.max_retries, connect=policy.max_retries, read=policy.max_retries,
        status=policy.max_retries, other=policy.max_retries,
        backoff_factor=policy.backoff_s, backoff_max=policy.max_backoff_s,
        status_forcelist=RETRY_STATUS, allowed_methods=frozenset({"GET", "POST", "HEAD"}),
        respect_retry_after_header=True, raise_on_status=False,
    )


def gdal_retry_env(policy: RetryPolicy) -> dict[str, str]:
    """GDAL's own HTTP retry settings for ``/vsicurl/`` reads, from ``policy``.

    GDAL (>= 3.10 for ``GDAL_HTTP_RETRY_CODES``) retries inside one open or one block read, so
    a transient 5xx or a dropped connection costs a re-request of that range only.

    Examples
    --------
    >>> gdal_retry_env(RetryPolicy(max_retries=3, backoff_s=0.5))["GDAL_HTTP_MAX_RETRY"]
    '3'
    """
    return {"GDAL_HTTP_MAX_RETRY": str(policy.max_retries),
            "GDAL_HTTP_RETRY_DELAY": f"{policy.backoff_s:g}",
            "GDAL_HTTP_RETRY_CODES": ",".join(str(c) for c in RETRY_STATUS)}


def clear_vsicurl_cache(url: str) -> bool:
    """Forget what GDAL's ``/vsicurl/`` cache holds for ``url`` (file size, blocks, failures).

    GDAL remembers a failed first answer for a URL (e.g. "does not exist" after a dropped
    connection), so a retry of ours would otherwise send no request at all. Calls
    ``VSICurlPartialClearCache`` in the GDAL library that rasterio loaded (through ctypes,
    there are no Python bindings for it in rasterio). Returns False if that is not possible.
    """
    lib = _gdal_lib()
    if lib is None:
        return False
    prefix = url if url.startswith("/vsi") else f"/vsicurl/{url}"
    lib.VSICurlPartialClearCache(prefix.encode())
    return True


_GDAL_LIB: list[Any] = []


def _gdal_lib() -> Any:
    if _GDAL_LIB:
        return _GDAL_LIB[0]
    import ctypes
    import glob
    import os

    import rasterio

    base = os.path.dirname(rasterio.__file__)
    found = sorted(glob.glob(os.path.join(base, os.pardir, "rasterio.libs", "libgdal*")))
    lib: Any = None
    for cand in [*found, "libgdal.so"]:
        try:
            lib = ctypes.CDLL(cand)
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
            lib.VSICurlPartialClearCache.restype = None
            break
        except (OSError, AttributeError):
            lib = None
    _GDAL_LIB.append(lib)
    return lib


_STATUS_CTX_RE = re.compile(
    r"(?i)\b(?:HTTP(?:/\d(?:\.\d)?)?(?:\s+(?:response|error|status))?(?:\s+code)?\s*[:=]?\s*"
    r"|status(?:\s+code)?\s*[:=]?\s*)(?P<code>[1-5]\d\d)\b"
)


def http_status(err: BaseException | str) -> int | None:
    """The HTTP status code an error carries (attribute, or "HTTP response code: 409" text).

    Examples
    --------
    >>> http_status("HTTP response code: 409")
    409
    >>> http_status("CURL error: Connection reset by peer") is None
    True
    """
    if not isinstance(err, str):
        for obj in (getattr(err, "response", None), err):
            code = getattr(obj, "status_code", None)
            if isinstance(code, int):
                return code
    m = _STATUS_CTX_RE.search(str(err))
    return int(m.group("code")) if m else None


_PERMANENT = re.compile(
    r"(?i)\b(400|401|403|404|405|409|410|422)\b|not recognized as|not a supported|"
    r"does not exist|no such file"
)


def is_retryable(err: BaseException) -> bool:
    """Return True for failures worth retrying: 5xx, 429, timeouts, dropped or refused connections.

    HTTP 4xx (other than 408/429), "not found" and "not a raster" are permanent.
    """
    if isinstance(err, (NoImageryError, NetworkError)):  # NetworkError: retries are spent
        return False
    status = http_status(err)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    text = str(err)
    return not _PERMANENT.search(text)


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = (OSError,),
    sleep: Callable[[float], None] = time.sleep,
    before_retry: Callable[[], object] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures with exponential backoff.

    Parameters
    ----------
    fn : callable
        Does one attempt of the remote operation.
    what : str
        What is being done, for messages (``"search https://.../search"``); redacted.
    policy : RetryPolicy
        Number of retries and delays.
    retry_on : tuple of exception types
        Exceptions that may be transient; :func:`is_retryable` then decides.
    sleep : callable
        Injected for tests.
    before_retry : callable, optional
        Called before each retry (e.g. to clear GDAL's cache of the failed URL).

    Returns
    -------
    The value of ``fn()``.

    Raises
    ------
    NetworkError
        A transient failure persisted through every retry (one-line, redacted message).
    SourceError
        A permanent failure (HTTP 404, not a raster, ...), with a redacted message.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except retry_on as err:
            if not is_retryable(err):
                if isinstance(err, SourceError):
                    raise type(err)(redact(str(err))) from None
                raise SourceError(f"{redact(what)}: {_one_line(err)}") from None
            attempt += 1
            if attempt > policy.max_retries:
                raise NetworkError(
                    f"{redact(what)}: failed after {attempt} attempts ({_one_line(err)}); check "
                    "the network and the API URL, or run with --offline to use the cache"
                ) from None
            delay = policy.delay_s(attempt)
            log.warning("%s: %s; retry %d/%d in %.1f s", redact(what), _one_line(err), attempt,
                        policy.max_retries, delay)
            sleep(delay)
            if before_retry is not None:
                before_retry()


def _one_line(err: BaseException) -> str:
    text = redact(" ".join(str(err).split()) or type(err).__name__)
    if len(text) <= 400:
        return text
    code = http_status(text)
    head = f"HTTP {code}: " if code is not None and f"HTTP {code}" not in text[:400] else ""
    return head + one_line(text, 400)


class _RedactFilter(logging.Filter):
    """Rewrites a record's message through :func:`redact` (signed URLs out of the logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):
            return True
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_LOGGERS_WITH_URLS = ("geo", "rasterio", "rasterio._env", "rasterio._err", "rasterio._base",
                      "rasterio._io", "rasterio._filepath", "rasterio.env", "pystac_client",
                      "pystac", "urllib3", "urllib3.connectionpool", "requests",
                      "planetary_computer")


def install_log_redaction() -> None:
    """Attach a redacting filter to the loggers that may print URLs (idempotent).

    GDAL errors reach Python logging through ``rasterio._env``; urllib3 logs request lines at
    DEBUG. Filters on a logger apply to records created on that logger, so each is listed.
    """
    for name in _LOGGERS_WITH_URLS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, _RedactFilter) for f in lg.filters):
            lg.addFilter(_RedactFilter())
