"""``factorywatch benchmark``: score a change method on a LEVIR-CD-like folder."""

from __future__ import annotations

import json

import click

from geo.cli._common import (
    FiniteFloat,
    common_options,
    progress_factory,
)
from geo.types import CHANGE_METHODS

__all__ = ["benchmark_cmd"]



@click.command("benchmark")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--method", "-m", type=click.Choice(CHANGE_METHODS), default="auto",
              show_default=True, help="Change-detection method.")
@click.option("--res-m", type=FiniteFloat(min=0, min_open=True), default=0.5, show_default=True,
              help="Pixel size for images without a projected CRS (LEVIR-CD: 0.5 m).")
@click.option("--min-area-m2", type=FiniteFloat(min=0), default=20.0, show_default=True,
              help="Drop change objects smaller than this.")
@click.option("--threshold", type=FiniteFloat(), default=None,
              help="Method threshold; default: the method's automatic rule.")
@common_options(json_help="Print the scores as JSON on stdout.")
def benchmark_cmd(dataset_dir: str, method: str, as_json: bool, res_m: float,
                  min_area_m2: float, threshold: float | None, verbose: int, quiet: int) -> None:
    """Score METHOD on DATASET_DIR (A/, B/, label/ with the same file names).

    Precision, recall, F1 and IoU come from the global TP/FP/FN over all
    images (the LEVIR-CD convention), with per-image scores and the time per
    megapixel.

    \b
    $ factorywatch benchmark ../shared/data/levir_cd/crops_256 --method cva
    $ factorywatch benchmark ../shared/data/whu_cd --method learned --json
    """
    from geo.benchmark import run_benchmark
    from geo.config import DetectParams

    params = DetectParams(min_area_m2=min_area_m2, threshold=threshold)
    res = run_benchmark(dataset_dir, method=method, params=params, res_m=res_m,
                        progress=progress_factory(quiet or int(as_json)))
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
        return
    click.echo(f"{'image':32s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'IoU':>6s} {'s':>6s}")
    for s in res.per_image:
        click.echo(f"{s.name:32s} {s.precision:9.3f} {s.recall:7.3f} {s.f1:6.3f} {s.iou:6.3f} "
                   f"{s.seconds:6.2f}")
    click.echo(f"{'OVERALL (' + str(res.n_images) + ' images)':32s} {res.precision:9.3f} "
               f"{res.recall:7.3f} {res.f1:6.3f} {res.iou:6.3f}")
    click.echo(f"method {res.method}: {res.seconds_per_megapixel:.2f} s per megapixel")
