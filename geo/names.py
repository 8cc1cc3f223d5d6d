"""Building names: kept from the input attributes, carried to sites, accepted by ``claim``.

Pure compute (tables in, tables out). A footprint may carry a ``name`` (from the analyst's
file: ``name``, ``Name``, ``Building A``, xBD ``uid``); a site takes the name of its latest
named sighting. ``claim --subject`` accepts a site id (``feb11:s5``), the short id shown on
the maps (``s5``) or a name (case-insensitive).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from geo.errors import FactoryWatchError

__all__ = ["NAME_FIELDS", "SiteNameError", "detect_name_field", "resolve_site", "short_id",
           "site_names"]

NAME_FIELDS: tuple[str, ...] = ("name", "Name", "NAME", "building", "Building", "label",
                                "Label", "uid", "UID", "id_name")
"""Attributes tried, in order, when no ``--name-field`` is given."""


class SiteNameError(FactoryWatchError, ValueError):
    """A site name or id given on the command line matches no site, or more than one."""


def detect_name_field(columns: Iterable[str], name_field: str | None = None) -> str | None:
    """Return the attribute holding building names, or None.

    Parameters
    ----------
    columns : iterable of str
        The input file's attribute names.
    name_field : str, optional
        The field asked for (``--name-field``); it must exist.

    Raises
    ------
    SiteNameError
        If ``name_field`` is given and is not one of ``columns``.

    Examples
    --------
    >>> detect_name_field(["date", "Name"]), detect_name_field(["date"]) is None
    ('Name', True)
    """
    cols = [str(c) for c in columns]
    if name_field is not None:
        if name_field not in cols:
            raise SiteNameError(f"no field {name_field!r} for --name-field; fields are "
                             f"{', '.join(cols)}")
        return name_field
    return next((c for c in NAME_FIELDS if c in cols), None)


def short_id(site_id: str) -> str:
    """The id shown on maps: ``"feb11:s5"`` → ``"s5"``.

    >>> short_id("feb11:s5")
    's5'
    """
    return str(site_id).rsplit(":", 1)[-1]


def site_names(footprints: pd.DataFrame) -> dict[str, str]:
    """Name of each site: that of its latest sighting with a non-empty ``name``.

    Returns an empty dict when ``footprints`` has no ``name`` column.
    """
    if "name" not in footprints.columns or "site_id" not in footprints.columns:
        return {}
    fp = footprints[["site_id", "date", "name"]].copy()
    fp = fp[fp["name"].notna() & (fp["name"].astype(str).str.strip() != "")]
    fp = fp.sort_values("date", kind="stable")
    return {str(s): str(n).strip() for s, n in zip(fp["site_id"], fp["name"], strict=True)}


def resolve_site(token: str, site_ids: Sequence[str], names: dict[str, str]) -> str:
    """Turn a site id, short id (``s5``) or building name into the site id.

    Parameters
    ----------
    token : str
        What the user typed.
    site_ids : sequence of str
        The run's site ids.
    names : dict
        ``site_id → name`` (see :func:`site_names`).

    Returns
    -------
    str
        The site id; ``token`` itself when it matches nothing (the caller reports that).

    Raises
    ------
    SiteNameError
        If a short id or a name matches more than one site.

    Examples
    --------
    >>> resolve_site("s2", ["a:s1", "a:s2"], {"a:s1": "Hall A"})
    'a:s2'
    >>> resolve_site("hall a", ["a:s1", "a:s2"], {"a:s1": "Hall A"})
    'a:s1'
    """
    ids = [str(s) for s in site_ids]
    if token in ids:
        return token
    by_short = [s for s in ids if short_id(s) == token]
    by_name = [s for s in ids if names.get(s, "").casefold() == token.strip().casefold()]
    for hits, what in ((by_short, "short id"), (by_name, "name")):
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise SiteNameError(f"{what} {token!r} matches sites {', '.join(hits)}; pass one "
                             "of those site ids")
    return token
