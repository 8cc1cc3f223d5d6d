"""geo.records: the JSON of checkpoints, watch records and run.json keeps its keys (issue 11)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from geo.records import ChangePair, DateRecord, RunInputs, RunSummary, SceneRef

SCENE = {"id": "s2_a", "date": "2022-06-10", "properties": {"sha256": "ab12", "cloud": 3.0}}
BASE: dict[str, Any] = {"date": "2022-06-10", "source_id": "s2_a", "bands": ["red", "nir"],
                        "kind": "reflectance", "valid_frac": 0.97, "scene": SCENE, "warnings": []}
# the three shapes a checkpoint had as a dict: reference date, aligned date, skipped date
REFERENCE = {**BASE, "shift_dy_px": 0.0, "shift_dx_px": 0.0, "shift_m": 0.0, "residual_m": 0.0,
             "reference": True}
ALIGNED = {**BASE, "shift_dy_px": 0.25, "shift_dx_px": -1.0, "shift_m": 10.3, "residual_m": 1.2,
           "coreg_ok": True, "normalization": {"method": "imad", "n_pixels": 900},
           "warnings": ["s2_a: co-registration residual 12 m"]}
SKIPPED = {**BASE, "valid_frac": 0.01, "skipped": True, "warnings": ["s2_a: only 1% valid"]}
# a watch store's date record: the checkpoint plus the detection and the valid area
WATCHED = {**ALIGNED, "detect_method": "contrast-objects", "detect_threshold": 0.4,
           "detect_tiles": 4, "valid_wkb": "0103000000"}


@pytest.mark.parametrize("d", [REFERENCE, ALIGNED, SKIPPED, WATCHED],
                         ids=["reference", "aligned", "skipped", "watched"])
def test_date_record_round_trips_the_checkpoint_keys(d: dict[str, Any]) -> None:
    rec = DateRecord.from_json(d)
    assert rec.to_json() == d
    assert pickle.loads(pickle.dumps(rec)) == rec  # Dask workers get records pickled


def test_date_record_fields() -> None:
    ref, al, sk = (DateRecord.from_json(d) for d in (REFERENCE, ALIGNED, SKIPPED))
    assert ref.reference and not al.reference and sk.skipped and not al.skipped
    assert al.residual == 1.2 and DateRecord.from_json(BASE).residual == 0.0
    assert al.bands == ("red", "nir") and al.scene == SceneRef(**SCENE)


def test_coregistration_and_inputs_entries_of_run_json() -> None:
    rec = DateRecord.from_json(ALIGNED)
    entry = rec.coreg_json()
    assert entry["residual_m"] == 1.2 and entry["reference"] is None
    assert entry["detect_method"] is None  # keys always present, as m.get(k) gave them
    assert set(entry) == {"date", "shift_dy_px", "shift_dx_px", "shift_m", "residual_m",
                          "coreg_ok", "reference", "normalization", "detect_method",
                          "detect_threshold", "valid_frac"}
    assert rec.input_json() == {"id": "s2_a", "date": "2022-06-10", "sha256": "ab12",
                                "properties": SCENE["properties"]}


def test_run_inputs_json_for_imagery_and_vector_runs() -> None:
    rec = DateRecord.from_json(ALIGNED)
    cp = ChangePair(date_from="2022-06-10", date_to="2023-06-10", method="cva",
                    changed_frac=0.01)
    img = RunInputs(dates=("2022-06-10",), records=(rec,), change_maps=(cp,), workers=2)
    assert set(img.to_json()) == {"dates", "workers", "coregistration", "change_maps", "inputs"}
    assert img.to_json()["change_maps"] == [cp.to_json()]
    assert ChangePair.from_json(cp.to_json()) == cp
    watch = RunInputs(dates=(), workers="local", watch={"new_dates": ["x"], "store": "s"})
    assert watch.to_json()["watch"] == {"new_dates": ["x"], "store": "s"}
    vec = RunInputs(dates=("2022",), mode="vector", files=(("/d/a.geojson", "ff"),))
    assert vec.to_json() == {"dates": ["2022"], "mode": "vector",
                             "inputs": [{"id": "a.geojson", "path": "/d/a.geojson",
                                         "sha256": "ff"}]}


def test_run_summary_to_dict_keys() -> None:
    s = RunSummary(aoi="a", run_dir="/r", n_scenes=2, dates=("1", "2"), n_sites=3,
                   outputs={"sites": "sites.geojson"}, warnings=("w",), synthetic=True)
    assert s.to_dict() == {"aoi": "a", "run_dir": "/r", "n_scenes": 2, "dates": ["1", "2"],
                           "n_sites": 3, "outputs": {"sites": "sites.geojson"},
                           "warnings": ["w"], "synthetic": True}
    import dataclasses

    assert dataclasses.replace(s, new_dates=("2",)).to_dict()["new_dates"] == ["2"]
