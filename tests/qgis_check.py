"""Open every output of a factorywatch run in real, headless QGIS and render a map.

Run with Debian's system Python, which has ``python3-qgis`` (it cannot import ``geo``)::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_check.py RUN_DIR OUT.png [EXPECT.json]

For each vector output (``<layer>.geojson`` + ``<layer>.qml`` sidecar, and every layer of
``results.gpkg`` with its style from ``layer_styles``) and each raster (``scenes/``,
``masks/``, ``change/``), it records whether the layer is valid, its CRS, feature count,
renderer type, categories and whether labels are on. ``EXPECT.json`` (written by
tests/test_qgis.py from the Python side) gives what those must be; every difference is a
"problem". It renders the GeoJSON layers over the last scene to ``OUT.png`` and the GPKG
layers to ``OUT_gpkg.png``, prints one JSON summary on stdout and exits 1 if there was any
problem.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsDateTimeRange,
    QgsFeatureRequest,
    QgsMapLayer,
    QgsMapRendererParallelJob,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsTemporalUtils,
    QgsVectorLayer,
    QgsVectorLayerTemporalContext,
)
from qgis.PyQt.QtCore import QDate, QDateTime, QSize, QTime
from qgis.PyQt.QtGui import QColor

VECTOR_LAYERS = ("footprints", "sites", "changes")


def vector_info(layer: QgsVectorLayer, style_msg: str) -> dict[str, Any]:
    r = layer.renderer() if layer.isSpatial() else None
    info: dict[str, Any] = {
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "feature_count": int(layer.featureCount()),
        "spatial": layer.isSpatial(),
        "geometry_type": int(layer.geometryType()),
        "renderer": r.type() if r is not None else None,
        "categories": [str(c.value()) for c in r.categories()]
        if r is not None and r.type() == "categorizedSymbol" else None,
        "category_attr": r.classAttribute() if r is not None and hasattr(r, "classAttribute")
        else None,
        "labels_enabled": bool(layer.labelsEnabled()),
        "label_expression": layer.labeling().settings().fieldName
        if layer.labelsEnabled() and layer.labeling() is not None else None,
        "style_message": style_msg,
        "fields": [f.name() for f in layer.fields()],
    }
    # features drawn with the catch-all "other" symbol (value not in the vocabulary, or the
    # attribute missing altogether)
    if info["categories"] is not None:
        attr = info["category_attr"]
        known = {c for c in info["categories"] if c != ""}
        idx = layer.fields().indexOf(attr)
        info["attr_present"] = idx >= 0
        info["n_other"] = sum(1 for f in layer.getFeatures()
                              if idx < 0 or str(f.attribute(idx)) not in known)
    return info


def _labels_at(layer: QgsVectorLayer, frame: QgsDateTimeRange) -> list[str]:
    """Label texts QGIS places for ``layer`` when the time controller shows ``frame``."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    ext = QgsRectangle(layer.extent())
    ext.scale(1.2)
    settings.setExtent(ext)
    settings.setOutputSize(QSize(800, 800))
    settings.setIsTemporal(True)
    settings.setTemporalRange(frame)
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    res = job.takeLabelingResults()
    return [lab.labelText for lab in res.allLabels()] if res is not None else []


def temporal_info(layer: QgsVectorLayer, project: QgsProject | None = None) -> dict[str, Any]:
    """Temporal properties as loaded from the style, and what each date's frame shows."""
    tp = layer.temporalProperties()
    own = project is None
    if project is None:
        project = QgsProject.instance()
        project.addMapLayer(layer, False)
    proj = QgsTemporalUtils.calculateTemporalRangeForProject(project)  # the controller's "set
    used = QgsTemporalUtils.usedTemporalRangesForProject(project)     # to project range"
    if own:
        project.takeMapLayer(layer)
    idx = layer.fields().indexOf("date")
    dates = sorted({str(f.attribute(idx).toString("yyyy-MM-dd") if hasattr(f.attribute(idx),
                    "toString") else f.attribute(idx))[:10] for f in layer.getFeatures()})
    ctx = QgsVectorLayerTemporalContext()
    ctx.setLayer(layer)
    frames: dict[str, Any] = {}
    for d in dates:
        start = QDateTime(QDate.fromString(d, "yyyy-MM-dd"), QTime(0, 0))
        frame = QgsDateTimeRange(start, start.addDays(1), True, False)
        expr = tp.createFilterString(ctx, frame)
        req = QgsFeatureRequest()
        if expr:
            req.setFilterExpression(expr)
        shown = [str(f.attribute(idx).toString("yyyy-MM-dd") if hasattr(f.attribute(idx),
                 "toString") else f.attribute(idx))[:10] for f in layer.getFeatures(req)]
        frames[d] = {"n_shown": len(shown), "dates_shown": sorted(set(shown)),
                     "labels": _labels_at(layer, frame)}
    return {
        "active": bool(tp.isActive()), "mode": int(tp.mode()),
        "used_ranges": sorted([r.begin().toString("yyyy-MM-dd"), r.end().toString("yyyy-MM-dd")]
                              for r in used),
        "project_range": [proj.begin().toString("yyyy-MM-ddTHH:mm:ss"),
                          proj.end().toString("yyyy-MM-ddTHH:mm:ss")],
        "frames": frames,
    }


def raster_info(layer: QgsRasterLayer) -> dict[str, Any]:
    r = layer.renderer()
    return {
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "bands": int(layer.bandCount()),
        "renderer": r.type() if r is not None else None,
        "width": int(layer.width()),
        "height": int(layer.height()),
    }


def render(layers: list[QgsMapLayer], extent: QgsRectangle, crs: QgsCoordinateReferenceSystem,
           out: Path) -> dict[str, Any]:
    settings = QgsMapSettings()
    settings.setLayers(layers)  # first = top
    settings.setDestinationCrs(crs)
    ext = QgsRectangle(extent)
    ext.scale(1.08)
    settings.setExtent(ext)
    settings.setOutputSize(QSize(1000, 800))
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setOutputDpi(110)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    ok = bool(img.save(str(out), "PNG"))
    errors = [f"{e.layerID}: {e.message}" for e in job.errors()]
    # count non-white pixels on a coarse lattice, to prove something was drawn
    drawn = 0
    for x in range(0, img.width(), 10):
        for y in range(0, img.height(), 10):
            if QColor(img.pixel(x, y)).name() != "#ffffff":
                drawn += 1
    return {"png": str(out), "saved": ok, "errors": errors, "drawn_samples": drawn,
            "size": [img.width(), img.height()]}


def check(expect: dict[str, Any], kind: str, name: str, info: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    exp = expect.get(kind, {}).get(name)
    if not info["valid"]:
        return [f"{kind}/{name}: layer is not valid"]
    if exp is None:
        return problems
    for key in ("crs", "feature_count", "renderer", "categories", "category_attr",
                "labels_enabled", "bands"):
        if key in exp and exp[key] != info.get(key):
            problems.append(f"{kind}/{name}: {key} is {info.get(key)!r}, expected {exp[key]!r}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    run_dir, out_png = Path(argv[1]), Path(argv[2])
    expect: dict[str, Any] = json.loads(Path(argv[3]).read_text()) if len(argv) > 3 else {}
    app = QgsApplication([], False)
    app.initQgis()
    summary: dict[str, Any] = {"qgis_version": "", "geojson": {}, "gpkg": {}, "rasters": {},
                               "problems": [], "renders": {}, "temporal": {}}
    from qgis.core import Qgis

    summary["qgis_version"] = Qgis.QGIS_VERSION
    keep: dict[str, QgsMapLayer] = {}

    for name in VECTOR_LAYERS:
        path = run_dir / f"{name}.geojson"
        if not path.exists():
            summary["problems"].append(f"geojson/{name}: {path} missing")
            continue
        layer = QgsVectorLayer(str(path), name, "ogr")  # loads <name>.qml as default style
        msg = "sidecar loaded at construction" if (run_dir / f"{name}.qml").exists() else "none"
        info = vector_info(layer, msg)
        if name == "footprints" and info["valid"]:
            # QgsVectorLayer's constructor resets the temporal properties of the sidecar it
            # just loaded to the OGR provider's defaults (inactive); re-applying the default
            # style (Layer Properties > Style > Default) loads them
            tmp = QgsVectorLayer(str(path), name, "ogr")
            summary["temporal"]["geojson_constructed"] = {
                "active": bool(tmp.temporalProperties().isActive())}
            tmp.loadDefaultStyle()
            summary["temporal"]["geojson"] = temporal_info(tmp)
            keep["geojson:footprints_temporal"] = tmp
        summary["geojson"][name] = info
        summary["problems"] += check(expect, "geojson", name, info)
        keep[f"geojson:{name}"] = layer

    gpkg = run_dir / "results.gpkg"
    if gpkg.exists():
        probe = QgsVectorLayer(str(gpkg), "probe", "ogr")
        sublayers = [s.split("!!::!!")[1] for s in probe.dataProvider().subLayers()] \
            if probe.isValid() else []
        summary["gpkg_sublayers"] = sublayers
        for name in [*VECTOR_LAYERS, "events"]:
            layer = QgsVectorLayer(f"{gpkg}|layername={name}", name, "ogr")
            msg, ok = ("", False)
            if layer.isValid():
                # what QGIS does when a layer is added: the stored default style from the DB
                msg, ok = layer.loadDefaultStyle()
            info = vector_info(layer, msg)
            info["default_style_loaded"] = bool(ok)
            if name == "footprints" and ok:
                summary["temporal"]["gpkg"] = temporal_info(layer)
            summary["gpkg"][name] = info
            summary["problems"] += check(expect, "gpkg", name, info)
            if name in VECTOR_LAYERS and not ok:
                summary["problems"].append(f"gpkg/{name}: stored default style not loaded ({msg})")
            keep[f"gpkg:{name}"] = layer
    else:
        summary["problems"].append(f"gpkg: {gpkg} missing")

    qgs = run_dir / "factorywatch.qgs"
    if qgs.exists():
        project = QgsProject()
        ok = project.read(str(qgs))
        layers = {lyr.name(): lyr for lyr in project.mapLayers().values()}
        ts = project.timeSettings()
        info = {"read": bool(ok), "crs": project.crs().authid(),
                "layers": {n: {"valid": lyr.isValid(), "feature_count": int(lyr.featureCount()),
                               "renderer": lyr.renderer().type() if lyr.renderer() else None,
                               "temporal": bool(lyr.temporalProperties().isActive())}
                           for n, lyr in layers.items()},
                "time_range": [ts.temporalRange().begin().toString("yyyy-MM-ddTHH:mm:ss"),
                               ts.temporalRange().end().toString("yyyy-MM-ddTHH:mm:ss")],
                "time_step": [ts.timeStep(), int(ts.timeStepUnit())]}
        if "footprints" in layers:
            info["footprints_temporal"] = temporal_info(layers["footprints"], project)
        summary["project"] = info
        keep["project"] = project  # type: ignore[assignment]

    for folder in ("scenes", "masks", "change"):
        for tif in sorted((run_dir / folder).glob("*.tif")):
            layer = QgsRasterLayer(str(tif), tif.stem)  # loads <stem>.qml
            key = f"{folder}/{tif.name}"
            info = raster_info(layer)
            summary["rasters"][key] = info
            summary["problems"] += check(expect, "rasters", key, info)
            keep[f"raster:{key}"] = layer

    scenes = sorted(k for k in keep if k.startswith("raster:scenes/"))
    probs = sorted(k for k in keep if k.startswith("raster:change/") and k.endswith("_prob.tif"))
    base = [keep[scenes[-1]]] if scenes else []
    utm = base[0].crs() if base else QgsCoordinateReferenceSystem("EPSG:3857")
    extent = base[0].extent() if base else QgsRectangle()
    geo_layers = [keep[k] for k in ("geojson:sites", "geojson:changes", "geojson:footprints")
                  if k in keep]
    if not extent.isEmpty() or geo_layers:
        summary["renders"]["geojson"] = render(
            geo_layers + base, extent if not extent.isEmpty() else geo_layers[0].extent(),
            utm, out_png)
        gp = [keep[k] for k in ("gpkg:sites", "gpkg:changes", "gpkg:footprints") if k in keep]
        prob = [keep[probs[-1]]] if probs else []
        gp_png = out_png.with_name(out_png.stem + "_gpkg.png")
        summary["renders"]["gpkg"] = render(gp + prob + base,
                                            extent if not extent.isEmpty() else gp[0].extent(),
                                            utm, gp_png)
    for key, r in summary["renders"].items():
        if not r["saved"] or r["errors"] or r["drawn_samples"] == 0:
            summary["problems"].append(f"render/{key}: {r}")

    print(json.dumps(summary, indent=1, sort_keys=True))
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip QGIS/Qt teardown: with layers still referenced from Python it can segfault at exit
    # (a known PyQGIS standalone issue), which would hide the real exit code.
    os._exit(code)
