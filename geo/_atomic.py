"""One way to write a file or a folder atomically, with temp names that can be swept.

Every output is built under a temporary name beside its destination and renamed into
place (:func:`os.replace`) only when complete, so a reader never sees half a file. The
temporary names all look like ``.<name>.<token>.fwtmp<suffix>`` (see :func:`is_temp`), so
that after a ``kill -9`` the leftovers of an interrupted write are recognised and swept
from a run's ``.partial`` folder (:func:`sweep_temps`) instead of being published.

A write that fails because the disk is full (``ENOSPC``), the quota is spent
(``EDQUOT``) or the file-size limit is hit (``EFBIG``) raises :class:`DiskFullError`
naming the file and the file system, whichever library (Python, GDAL, pyogrio) wrote it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from geo.errors import DiskFullError, FactoryWatchError, RunDirError

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

__all__ = [
    "FILE_MODE",
    "TEMP_TAG",
    "atomic_dir",
    "atomic_open",
    "atomic_path",
    "atomic_write_text",
    "disk_full_error",
    "is_temp",
    "replace_dir",
    "sweep_temps",
]

FILE_MODE = 0o644
"""Outputs are meant to be shared (``mkstemp`` would make them 0600)."""
DIR_MODE = 0o755
LOW_SPACE_BYTES = 1 << 20
"""A failed write with less than this free on its file system counts as "disk full"."""
TEMP_TAG = ".fwtmp"
"""Every temporary name contains this tag."""

_IO_LIBS = {"rasterio", "pyogrio", "fiona"}
"""Libraries whose write errors may mean a full disk (GDAL reports it without errno)."""
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_TEXT = re.compile(r"no space left|disk full|file too large|quota exceeded|"
                        r"free disk space|database or disk is full", re.IGNORECASE)
# temp names of this module, and of the writers it replaced (runs interrupted before it)
_TEMP_NAME = re.compile(r"^\..+(\.fwtmp.*|\.tmp(\.[A-Za-z0-9]+)?|\.part|\.partial|\.old-\d+)$")
_SIDECARS = ("-wal", "-shm", "-journal", ".aux.xml")


def _temp_for(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_TAG}{suffix}")


def is_temp(name: str) -> bool:
    """True for a temporary name written by this module (or an older factorywatch writer).

    Examples
    --------
    >>> is_temp(".2019-05-20.tif.3fa2b1c0.fwtmp.tif"), is_temp(".2019-05-20.ab12.tmp.tif")
    (True, True)
    >>> is_temp("2019-05-20.tif"), is_temp(".factorywatch")
    (False, False)
    """
    return bool(_TEMP_NAME.match(name))


def _mount_point(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _exhausted(probe: Path, need_bytes: int) -> str | None:
    """Why writing under ``probe`` fails for lack of room: "space", "size" or None.

    GDAL and libtiff report a full disk as a seek or write error without ``errno`` (and may
    delete their partial output), so after a failed write the file system is asked
    directly: less free than ``max(need_bytes, LOW_SPACE_BYTES)``, or a process file-size
    limit below ``need_bytes`` (or reached by the temp file), means no room.
    """
    folder = probe
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < max(need_bytes, LOW_SPACE_BYTES):
        return "space"
    if resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        size = probe.stat().st_size if probe.is_file() else 0
        if soft != resource.RLIM_INFINITY and max(size, need_bytes) >= soft - LOW_SPACE_BYTES:
            return "size"
    return None


def disk_full_error(err: BaseException, path: str | Path, probe: str | Path | None = None,
                    need_bytes: int = 0) -> DiskFullError | None:
    """A :class:`DiskFullError` for ``path`` if ``err`` means the disk is full, else None.

    Only ``OSError`` and the errors of GDAL bindings (rasterio, pyogrio) are considered:
    ``ENOSPC``/``EDQUOT``/``EFBIG``, the messages GDAL and SQLite use for them, or (GDAL's
    seek/write errors carry no errno) a file system under ``probe`` with less than
    ``max(need_bytes, LOW_SPACE_BYTES)`` free or a file-size limit below ``need_bytes``.
    """
    if isinstance(err, DiskFullError):
        return err
    # rasterio raises SystemError("Unknown GDAL Error") when a COG write hits the file-size
    # limit half way
    gdal_unknown = isinstance(err, SystemError) and "GDAL" in str(err)
    if isinstance(err, FactoryWatchError) or not (
            isinstance(err, OSError) or gdal_unknown
            or type(err).__module__.split(".")[0] in _IO_LIBS):
        return None
    code = err.errno if isinstance(err, OSError) else None
    text = _FULL_TEXT.search(str(err))
    why = ("size" if code == errno.EFBIG or (text and "too large" in text[0].lower())
           else "space" if code in _FULL_ERRNOS or text else None)
    if why is None and probe is not None:
        why = _exhausted(Path(probe), need_bytes)
    if why is None:
        return None
    p = Path(getattr(err, "filename", None) or path)
    extra = " (the file-size limit was reached)" if why == "size" else ""
    return DiskFullError(f"no space left on {_mount_point(p)} writing {p}{extra}; free space "
                         "or choose another -o")


def _cleanup(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    for p in (tmp, *(Path(f"{tmp}{s}") for s in _SIDECARS)):
        with contextlib.suppress(OSError):
            p.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str | None = None, fsync: bool = False,
                mode: int = FILE_MODE, need_bytes: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Parameters
    ----------
    path : str or Path
        The destination. Its folder is created.
    suffix : str, optional
        Ending of the temporary name (default: ``path``'s suffix, so GDAL drivers that look
        at the extension still recognise it).
    fsync : bool
        Flush the file to disk before the rename (the cache uses this).
    mode : int
        Permissions of the finished file.
    need_bytes : int
        A bound on the size of the file (GDAL writers): a failed write with less than that
        free on the file system is reported as a full disk.

    Notes
    -----
    The temporary file is not created: the caller (or GDAL) creates it. On any exception,
    KeyboardInterrupt included, it and its SQLite/GDAL sidecars are removed and ``path`` is
    left as it was; a full disk is re-raised as :class:`DiskFullError`.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        full = disk_full_error(err, p)
        if full is not None:
            raise full from err
        raise
    tmp = _temp_for(p, p.suffix if suffix is None else suffix)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException as err:
        full = disk_full_error(err, p, tmp, need_bytes)
        _cleanup(tmp)
        if full is not None and full is not err:
            raise full from err
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; rename it into place on success."""
    with atomic_path(path, fsync=fsync) as tmp:
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8"}
        with open(tmp, mode.replace("w", "x"), **kwargs) as f:
            yield f


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return ``path``."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; on success it replaces ``path``.

    The old folder is renamed away first and removed only once the new one is in place.
    """
    p = Path(path)
    tmp = _temp_for(p, "")
    try:
        tmp.mkdir(mode=DIR_MODE, parents=True)
        os.chmod(tmp, DIR_MODE)
        yield tmp
        replace_dir(tmp, p)
    except BaseException as err:
        full = disk_full_error(err, p, tmp)
        _cleanup(tmp)
        if full is not None and full is not err:
            raise full from err
        raise


def replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` onto ``dst``; an old ``dst`` is removed afterwards.

    ``dst`` must not be a symbolic link (the link, not its target, would be renamed).
    """
    if dst.is_symlink():
        raise RunDirError(f"{dst} is a symbolic link; factorywatch does not replace through "
                          "links: remove the link or choose another folder")
    if not os.path.lexists(dst):
        os.replace(src, dst)
        return
    old = _temp_for(dst, ".old")
    old.mkdir()
    os.replace(dst, old)  # rename onto an empty folder: atomic on POSIX
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def sweep_temps(root: str | Path) -> list[Path]:
    """Remove every temporary file or folder (:func:`is_temp`) under ``root``; return them.

    Only for folders factorywatch owns (a run's ``.partial``): never run on user folders.
    Symbolic links are never followed.
    """
    removed: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            if is_temp(d) and not (base / d).is_symlink():
                shutil.rmtree(base / d, ignore_errors=True)
                dirnames.remove(d)
                removed.append(base / d)
        for f in filenames:
            if is_temp(f) or any(f.endswith(s) and is_temp(f[:-len(s)]) for s in _SIDECARS):
                with contextlib.suppress(OSError):
                    (base / f).unlink()
                    removed.append(base / f)
    return removed
