"""Three small SYNTHETIC demo-like AOI series for the watch tests (geo.demo + geo.synthetic).

Each AOI is a 200 x 200 m scene at 1 m with four dates: hall A unchanged, B new on the second
date and grown on the third, D demolished after the second, E new on the fourth. The watch
folder of each AOI gets the first ``n_dates`` images; :func:`add_date` adds the next one.
geo.demo writes a series' last date in Web Mercator; a fifth, unused date takes that place so
that the four watched dates are all UTM (on a 200 m scene the Web Mercator date fails
co-registration, in ``run`` as in ``watch``). Only ``site_a`` writes the HTML report (its own
``[output]`` key wins over the watchlist's default ``report = false``), to save CPU; with
``report=False`` no AOI does (``[output]`` may change between watch runs of one store).
Everything here is SYNTHETIC and labelled so (file names, tags, AOI properties).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from geo.demo import write_demo
from geo.synthetic import Hall, SceneSpec

DATES = ("2019-05-20", "2020-06-02", "2021-05-28", "2022-06-10")


def spec_for(k: int) -> SceneSpec:
    """The k-th AOI's series (halls moved a little and another noise seed per AOI)."""
    d, o = DATES, 4.3 * k
    b_small = ((100.4 + o, 110.6, 130.4 + o, 140.6),)
    b_big = ((100.4 + o, 100.6, 170.4 + o, 150.6),)
    halls = (
        Hall(name="A", rects_by_date=dict.fromkeys(d, ((20.3, 120.2 - o, 70.3, 150.2 - o),)),
             roof_rgb=(0.58, 0.58, 0.60)),
        Hall(name="B", rects_by_date={d[0]: None, d[1]: b_small, d[2]: b_big, d[3]: b_big},
             roof_rgb=(0.60, 0.30, 0.26), height_m=12.0),
        Hall(name="D", rects_by_date={d[0]: ((20.2, 30.7 + o, 60.2, 60.7 + o),),
                                      d[1]: ((20.2, 30.7 + o, 60.2, 60.7 + o),),
                                      d[2]: None, d[3]: None},
             roof_rgb=(0.62, 0.60, 0.55), height_m=8.0),
        Hall(name="E", rects_by_date={d[0]: None, d[1]: None, d[2]: None,
                                      d[3]: ((120.4, 20.6 + o, 170.4, 60.6 + o),)},
             roof_rgb=(0.30, 0.42, 0.62), height_m=10.0),
    )
    return SceneSpec(size_m=(200.0, 200.0), res_m=1.0, dates=(*d, "2023-06-01"), halls=halls,
                     roads=((0.0, 86.0, 200.0, 92.0),), soil=((95.0, 95.0, 178.0, 158.0),),
                     gain={d[0]: 1.0, d[1]: 1.08, d[2]: 0.92, d[3]: 1.04},
                     offset={d[1]: 0.01, d[2]: -0.01}, shift_px={d[2]: (-0.6, 0.9)},
                     seed=100 + k)


def write_series(root: Path, n_aois: int = 3, n_dates: int = 3, *, report: bool = True) -> Path:
    """Write ``n_aois`` AOIs under ``root/sites`` with the first ``n_dates`` images each and a
    watchlist ``root/watchlist.toml``; return the watchlist. ``report``: ``site_a`` writes the
    HTML report (see :func:`set_report`)."""
    sites = root / "sites"
    sites.mkdir(parents=True)
    for k in range(n_aois):
        name = f"site_{'abc'[k]}"
        full = root / "full" / name
        files = write_demo(full, spec_for(k))
        img = root / "imagery" / name
        img.mkdir(parents=True)
        shutil.copy2(files.aoi, sites / f"{name}.geojson")
        (sites / f"{name}.toml").write_text(
            f'# SYNTHETIC watch test series\n[aoi]\ngeometry = "{name}.geojson"\n'
            f'name = "{name}"\n\n[source]\nkind = "local"\npath = "../imagery/{name}"\n\n'
            '[grid]\nresolution_m = 1.0\n\n[coreg]\nmax_residual_m = 1.0\n'
            + (f"\n[output]\nreport = {str(report).lower()}\n" if k == 0 else ""))
        for date in DATES[:n_dates]:
            add_date(root, name, date)
    wl = root / "watchlist.toml"
    wl.write_text('# SYNTHETIC watch test watchlist\naois = ["sites/"]\n\n'
                  "[defaults.detect]\nmin_area_m2 = 300.0\n\n[defaults.match]\n"
                  "iou_threshold = 0.25\nmin_dates = 1\n\n[defaults.output]\ngpkg = false\n"
                  "report = false\n\n"
                  '[[claim]]\naoi = "site_a"\nsubject = "site_a:s3"\nreference = "neighbour"\n'
                  'relation = ">"\nfactor = 2\n')
    return wl


def set_report(root: Path, name: str, report: bool) -> None:
    """Switch the HTML report of AOI ``name`` (of :func:`write_series` under ``root``) on or
    off: only ``[output]`` changes, which a watch accepts between runs of the same store."""
    toml = root / "sites" / f"{name}.toml"
    text = toml.read_text()
    for old in ("report = true", "report = false"):
        text = text.replace(f"[output]\n{old}\n", "")
    toml.write_text(text.rstrip("\n") + f"\n\n[output]\nreport = {str(report).lower()}\n")


def image_for(root: Path, name: str, date: str) -> Path:
    """The written image of ``date`` (its file name depends on how geo.demo wrote it)."""
    folder = root / "full" / name / "imagery"
    i = DATES.index(date)
    if i == 1:
        return folder / "synthetic_scene_b.tif"
    return folder / f"synthetic_{date}.tif"


def add_date(root: Path, name: str, date: str) -> Path:
    """Copy one date's image into the AOI's watched imagery folder."""
    src = image_for(root, name, date)
    dst = root / "imagery" / name / src.name
    shutil.copy2(src, dst)
    return dst
