"""Two dates that do not share a grid or bands are refused with a one-line project error.

Issue 11 item 5: where arrays of two dates meet (change maps, co-registration, radiometric
normalisation) ``check_same_grid`` raises :class:`CrsMismatchError`; missing or different
bands raise :class:`BandError`, never a bare ``ValueError``/``KeyError``.
"""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from geo.cli._common import common_options
from geo.config import DetectParams
from geo.coreg import coregister
from geo.detect import building_method, change_map
from geo.errors import BandError, CrsMismatchError, FactoryWatchError, MissingBandError
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.normalize import normalize_to

PARAMS = DetectParams()


def _image(grid: Grid, bands: tuple[str, ...] = ("red", "green", "blue"), seed: int = 0,
           date: str = "2024-01-01") -> GeoArray:
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.05, 0.3, (len(bands), *grid.shape)).astype(np.float32)
    return GeoArray(data=data, valid=np.ones(grid.shape, bool), grid=grid, date=date,
                    bands=bands, kind="rgb", source_id=f"scene_{date}.tif")


G = Grid(crs="EPSG:32652", transform=Affine(1.0, 0, 500000.0, 0, -1.0, 4500000.0),
         shape=(64, 64))
SHIFTED = Grid(crs="EPSG:32652", transform=Affine(1.0, 0, 500010.0, 0, -1.0, 4500000.0),
               shape=(64, 64))
OTHER_CRS = Grid(crs="EPSG:32651", transform=G.transform, shape=(64, 64))


@pytest.mark.parametrize("other", [SHIFTED, OTHER_CRS], ids=["extent", "crs"])
@pytest.mark.parametrize("step", ["change_map", "coregister", "normalize_to"])
def test_two_dates_on_different_grids_are_refused(step: str, other: Grid) -> None:
    a, b = _image(G), _image(other, seed=1, date="2024-06-01")
    fn = {"change_map": lambda: change_map(a, b, params=PARAMS, method="cva"),
          "coregister": lambda: coregister(a, b),
          "normalize_to": lambda: normalize_to(a, b)}[step]
    with pytest.raises(CrsMismatchError, match="resample onto one AOI grid"):
        fn()


@pytest.mark.parametrize("step", ["change_map", "normalize_to"])
def test_two_dates_with_different_bands_are_refused(step: str) -> None:
    a = _image(G)
    b = _image(G, bands=("nir", "red", "green"), seed=1, date="2024-06-01")
    with pytest.raises(BandError, match=r"scene_2024-06-01\.tif: bands nir, red, green differ"):
        if step == "change_map":
            change_map(a, b, params=PARAMS, method="cva")
        else:
            normalize_to(a, b)


def test_missing_band_is_a_project_error_and_still_a_key_error() -> None:
    ga = _image(G)
    with pytest.raises(MissingBandError) as err:
        ga.band("nir")
    assert isinstance(err.value, KeyError) and isinstance(err.value, FactoryWatchError)
    assert str(err.value).startswith("scene_2024-01-01.tif: no 'nir' band (it has red, green")
    assert "\n" not in str(err.value)


def test_builtup_without_nir_names_the_config_key() -> None:
    with pytest.raises(BandError, match=r"\[detect\] method 'builtup' needs nir"):
        building_method(_image(G), DetectParams(method="builtup"))


def test_a_band_error_reaches_the_user_as_one_line_exit_1() -> None:
    """Through the shared CLI plumbing the message is one line, not "unexpected ... report it"."""
    import click

    @click.command()
    @common_options()
    def cmd(verbose: int, quiet: int) -> None:
        change_map(_image(G), _image(SHIFTED, seed=1), params=PARAMS, method="cva")

    res = CliRunner().invoke(cmd, [])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "Error: scene_2024-01-01.tif vs scene_2024-01-01.tif: grids differ in extent"), res.output
    assert "unexpected" not in res.output and "Traceback" not in res.output
