"""Running stage functions: serially with a progress bar or on a local Dask cluster; timing them."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from geo.records import StageTiming

__all__ = ["Progress", "StageNotes", "StageRunner", "Stages", "no_progress"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterator[T]]
StageNotes = dict[str, str | int | float]
"""What a stage counted (``n_dates=4``), filled in while the stage runs."""


def _peak_rss_mb() -> float | None:
    """Peak RSS of this process so far in MB (Linux ``ru_maxrss`` is in KiB), or None."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def no_progress(items: Iterable[T], _label: str) -> Iterator[T]:
    """The progress wrapper that shows nothing."""
    yield from items


class Stages:
    """Stage timer: one INFO line per stage, also stored in run.json."""

    def __init__(self) -> None:
        self.records: list[StageTiming] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[StageNotes]:
        """Time the ``with`` block as stage ``name``; yields its notes to fill."""
        notes: StageNotes = {}
        t0, c0 = time.perf_counter(), time.process_time()
        yield notes
        rec = StageTiming(stage=name, seconds=round(time.perf_counter() - t0, 3), notes=notes,
                          cpu_s=round(time.process_time() - c0, 3), peak_rss_mb=_peak_rss_mb())
        self.records.append(rec)
        extra = ", ".join(f"{k}={v}" for k, v in notes.items())
        log.info("%s: %s%.1f s (CPU %.1f s, peak RSS %s MB)", name, f"{extra}, " if extra else "",
                 rec.seconds, rec.cpu_s, rec.peak_rss_mb)

    def to_json(self) -> list[dict[str, Any]]:
        """The ``stages`` list of run.json."""
        return [r.to_json() for r in self.records]


class StageRunner:
    """Maps a per-item stage function serially (with a progress bar) or on a Dask cluster.

    With ``workers > 1`` a local Dask distributed cluster of that many single-threaded
    processes is started once per run; stage functions get picklable values only.
    """

    def __init__(self, workers: int, prog: Progress[Any]) -> None:
        self.workers, self.prog = workers, prog
        self._stack = contextlib.ExitStack()
        self.client: Any = None

    def __enter__(self) -> StageRunner:
        return self

    def _start(self) -> Any:
        if self.client is None:
            from distributed import Client, LocalCluster

            # port 0 for the scheduler's HTTP server: never collide with another cluster on 8787
            cluster = self._stack.enter_context(LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address="127.0.0.1:0", host="127.0.0.1"))
            self.client = self._stack.enter_context(Client(cluster))
            log.info("dask: local cluster with %d worker processes", self.workers)
        return self.client

    def map(self, fn: Callable[..., T], items: list[Any], label: str, *args: Any) -> list[T]:
        """``[fn(item, *args) for item in items]``, in order, here or on the cluster."""
        if self.workers > 1 and len(items) > 1:
            client = self._start()
            futures = [client.submit(fn, item, *args, pure=False) for item in items]
            return [f.result() for f in self.prog(futures, label)]
        return [fn(item, *args) for item in self.prog(items, label)]

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
