from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.errors import NotGeoreferencedWarning

from geo.benchmark import confusion, group_of, list_triplets, scores
from geo.cli import main
from geo.errors import SourceError


def _png(path: Path, arr: np.ndarray) -> None:
    arr = arr if arr.ndim == 3 else arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=arr.shape[2], height=arr.shape[1],
                           count=arr.shape[0], dtype="uint8") as dst:
            dst.write(arr.astype(np.uint8))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    shape = (64, 64)
    for name, square, label in (
        ("one.png", (slice(10, 30), slice(10, 30)), (slice(10, 30), slice(20, 40))),
        ("two.png", None, None),
    ):
        a = 70 + rng.integers(0, 4, (3, *shape))
        b = 70 + rng.integers(0, 4, (3, *shape))
        lab = np.zeros(shape, np.uint8)
        if square is not None:
            b[:, square[0], square[1]] = 250
            lab[label] = 255
        _png(tmp_path / "A" / name, a)
        _png(tmp_path / "B" / name, b)
        _png(tmp_path / "label" / name, lab)
    return tmp_path


def test_cli_metrics_match_hand_computed_confusion(dataset: Path) -> None:
    # prediction = the 20x20 square at rows 10:30, cols 10:30; label = rows 10:30, cols 20:40
    # TP = 20*10 = 200, FP = 200, FN = 200 -> P = R = F1 = 0.5, IoU = 1/3; image two: all zero
    r = CliRunner().invoke(main, ["benchmark", str(dataset), "--method", "cva", "--json", "-q"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"precision", "recall", "f1", "iou", "n_images", "per_image"} <= set(out)
    assert out["n_images"] == 2
    assert (out["tp"], out["fp"], out["fn"]) == (200, 200, 200)
    assert out["precision"] == pytest.approx(0.5)
    assert out["recall"] == pytest.approx(0.5)
    assert out["f1"] == pytest.approx(0.5)
    assert out["iou"] == pytest.approx(1 / 3)
    two = next(p for p in out["per_image"] if p["name"] == "two.png")
    assert (two["tp"], two["fp"], two["fn"], two["tn"]) == (0, 0, 0, 64 * 64)
    assert two["f1"] == 1.0


def test_cli_text_output_and_missing_folder(dataset: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["benchmark", str(dataset), "--method", "cva", "-q"])
    assert r.exit_code == 0
    assert "OVERALL (2 images)" in r.stdout
    assert "per megapixel" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["benchmark", str(empty)])
    assert r.exit_code == 1
    assert "A/" in r.stderr


def test_unknown_method_is_a_usage_error(dataset: Path) -> None:
    r = CliRunner().invoke(main, ["benchmark", str(dataset), "--method", "magic"])
    assert r.exit_code == 2


def test_confusion_and_scores_by_hand() -> None:
    pred = np.array([[1, 1, 0], [0, 1, 0]], bool)
    truth = np.array([[1, 0, 0], [1, 1, 0]], bool)
    assert confusion(pred, truth) == (2, 1, 1, 2)
    p, r, f1, iou = scores(2, 1, 1)
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert f1 == pytest.approx(2 / 3) and iou == pytest.approx(0.5)
    assert scores(0, 0, 0) == (1.0, 1.0, 1.0, 1.0)
    assert scores(0, 3, 0)[2] == 0.0


def test_groups_and_triplets(tmp_path: Path) -> None:
    assert group_of("test_7_0256_0512.png") == group_of("test_7.png") == "test_7"
    assert group_of("train_36_0512_0512") == "train_36"
    with pytest.raises(SourceError, match="A/"):
        list_triplets(tmp_path)
