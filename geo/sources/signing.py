"""Asset signers: turn an unsigned asset href into one the storage accepts, just before a read.

``[source] sign`` chooses one:

``none``
    Hrefs are read as they are (Earth Search, public buckets).
``planetary-computer``
    The ``planetary-computer`` package signs the href (SAS token from Microsoft's endpoint).
``sas-token``
    A Planetary-Computer-style token endpoint, ``[source] sign_token_url`` (for example
    ``https://mirror.example/api/sas/v1/token/{collection}``), answers
    ``{"token": "st=...&sig=...", "msft:expiry": "..."}``; the token is appended as the query
    string. Tokens are kept in memory per collection until shortly before they expire, and
    never written to the cache, ``run.json``, logs or error messages
    (see :func:`geo.http.redact`).
``auto`` (default)
    ``planetary-computer`` for Planetary Computer's API URL, else ``none``.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from geo.errors import ConfigError, SourceError, one_line
from geo.http import RetryPolicy, api_retry, redact

__all__ = ["SIGNERS", "AssetSigner", "resolve_sign"]

SIGNERS = ("auto", "none", "planetary-computer", "sas-token")
"""Values of ``[source] sign``."""

_EXPIRY_MARGIN_S = 300.0


def resolve_sign(sign: str, api_url: str, token_url: str = "") -> str:
    """The signer to use for ``sign`` (``auto`` resolved against ``api_url``).

    Examples
    --------
    >>> resolve_sign("auto", "https://planetarycomputer.microsoft.com/api/stac/v1")
    'planetary-computer'
    >>> resolve_sign("auto", "https://earth-search.aws.element84.com/v1")
    'none'
    """
    if sign not in SIGNERS:
        raise ConfigError(f"[source] sign={sign!r} must be one of {', '.join(SIGNERS)}")
    if sign == "sas-token" and "{collection}" not in token_url:
        raise ConfigError(
            "[source] sign = \"sas-token\" needs sign_token_url with {collection} in it, e.g. "
            "\"https://host/api/sas/v1/token/{collection}\""
        )
    if sign == "auto":
        return "planetary-computer" if "planetarycomputer.microsoft.com" in api_url else "none"
    return sign


class AssetSigner:
    """Signs hrefs per ``sign`` mode; holds SAS tokens in memory only.

    Parameters
    ----------
    mode : {"none", "planetary-computer", "sas-token"}
        Already resolved (see :func:`resolve_sign`).
    token_url : str
        Token endpoint with ``{collection}`` (``sas-token`` only).
    policy : RetryPolicy
        Timeout and retries of the token request.
    """

    def __init__(self, mode: str, *, token_url: str = "",
                 policy: RetryPolicy | None = None) -> None:
        self.mode = mode
        self.token_url = token_url
        self.policy = policy or RetryPolicy()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # pickles for Dask workers, without tokens
        return {"mode": self.mode, "token_url": self.token_url, "policy": self.policy}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.mode, self.token_url, self.policy = state["mode"], state["token_url"], state["policy"]
        self._tokens = {}
        self._lock = threading.Lock()

    def sign(self, href: str, collection: str) -> str:
        """Return ``href`` signed for reading (unchanged for ``none``)."""
        if self.mode == "none" or not href.startswith(("http://", "https://")):
            return href
        if self.mode == "planetary-computer":
            import planetary_computer

            return str(planetary_computer.sign(href))
        token = self._token(collection)
        return f"{href.split('?', 1)[0]}?{token}"

    def _token(self, collection: str) -> str:
        with self._lock:  # held while fetching: parallel reads share one token request
            hit = self._tokens.get(collection)
            if hit is not None and hit[1] - _EXPIRY_MARGIN_S > time.time():
                return hit[0]
            token, expiry = self._fetch_token(collection)
            self._tokens[collection] = (token, expiry)
            return token

    def _fetch_token(self, collection: str) -> tuple[str, float]:
        import requests
        from requests.adapters import HTTPAdapter

        url = self.token_url.format(collection=collection)
        with requests.Session() as session:
            adapter = HTTPAdapter(max_retries=api_retry(self.policy))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                resp = session.get(url, timeout=self.policy.timeout_s)
            except requests.RequestException as err:
                # a ConnectionError is an OSError: call_with_retries retries it, then NetworkError
                detail = one_line(redact(str(err)), 200)
                raise ConnectionError(f"SAS token endpoint {redact(url)}: {detail}") from None
        if resp.status_code != 200:
            raise SourceError(
                f"SAS token endpoint {redact(url)}: HTTP {resp.status_code}; check [source] "
                "sign_token_url and that the collection is served there"
            )
        try:
            doc = resp.json()
            token = str(doc["token"]).lstrip("?")
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"SAS token endpoint {redact(url)}: the answer has no \"token\"; "
                              "check [source] sign_token_url") from None
        return token, _expiry(doc.get("msft:expiry"))


def _expiry(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 600.0
