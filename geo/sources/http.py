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
from typing import TypeVar

from geo.errors import NetworkError, NoImageryError, SourceError, one_line

__all__ = [
    "RetryPolicy",
    "call_with_retries",
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


_PERMANENT = re.compile(
    r"(?i)\b(400|401|403|404|405|410|422)\b|not recognized as|not a supported|does not exist|"
    r"no such file"
)


def is_retryable(err: BaseException) -> bool:
    """Return True for failures worth retrying: 5xx, 429, timeouts, dropped or refused connections.

    HTTP 4xx (other than 408/429), "not found" and "not a raster" are permanent.
    """
    if isinstance(err, NoImageryError):
        return False
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status is None:
        status = getattr(err, "status_code", None)
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


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return one_line(redact(text), 240)


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
