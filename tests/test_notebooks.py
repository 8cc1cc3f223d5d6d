"""Execute the jupytext notebooks in notebooks/ with nbclient, so they cannot rot.

Each notebook is converted from py:percent with jupytext and run in a kernel started from this
test's own interpreter (a throwaway kernelspec pointing at ``sys.executable``), with the
repository first on ``PYTHONPATH``. A notebook whose ``geo`` module is not in this checkout yet
(another helper's branch not merged) is skipped with that reason; any other error fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
SHARED = Path(os.environ["FACTORYWATCH_SHARED"]) if os.environ.get("FACTORYWATCH_SHARED") \
    else next((p / "shared" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
              ROOT.parent / "shared")  # the one variable the README documents
SHARED_LEVIR = SHARED / "data" / "levir_cd" / "crops_256"
KERNEL = "factorywatch-test"


def _missing_geo_module(name: str | None) -> bool:
    """True if ``name`` is a geo module that this checkout really lacks."""
    if not name or not (name == "geo" or name.startswith("geo.")):
        return False
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:
        return True


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "factorywatch tests", "language": "python",
    }))
    return {"JUPYTER_PATH": str(spec_dir.parent.parent),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "MPLBACKEND": "Agg", "JUPYTER_PLATFORM_DIRS": "1"}


def test_notebooks_are_found() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart_demo.py", "02_measure_and_claim_from_footprints.py",
        "03_benchmark_results.py"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, kernel_env: dict[str, str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    if path.name.startswith("03_") and not SHARED_LEVIR.is_dir():
        pytest.skip(f"benchmark notebook needs the shared LEVIR-CD crops at {SHARED_LEVIR}")
    for k, v in kernel_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FW_WORKDIR", str(tmp_path))
    # the notebooks' own knobs for a shorter run (each documented in its notebook); what they
    # leave out runs elsewhere: the 1 m demo in conftest's demo_cli (tests/test_pipeline.py),
    # cva benchmarked in test_detection_demo_bench.py and test_benchmark.py
    monkeypatch.setenv("FW_DEMO_RES_M", "2")  # 01: the demo series at 2 m, a quarter the pixels
    monkeypatch.setenv("FW_BENCH_METHODS", "rgb-objects")  # 03: one method, not two
    monkeypatch.setenv("FACTORYWATCH_SHARED", str(SHARED))
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=600,
                                     resources={"metadata": {"path": str(path.parent)}})
    with warnings.catch_warnings():
        # jupyter_client/zmq deprecation chatter in *this* process is not the notebook's fault
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as err:
            if err.ename in ("ModuleNotFoundError", "ImportError"):
                name = err.evalue.split("'")[1] if "'" in err.evalue else None
                if _missing_geo_module(name):
                    pytest.skip(f"{path.name} needs {name}, which is not in this checkout yet")
            raise
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []


def test_benchmark_notebook_without_shared_data_says_what_to_set(tmp_path: Path) -> None:
    """Notebook 03 run where no shared data exists: one clear message naming the variable."""
    import subprocess

    env = {**os.environ, "FACTORYWATCH_SHARED": str(tmp_path / "nowhere"),
           "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, str(ROOT / "notebooks" / "03_benchmark_results.py")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("FileNotFoundError: LEVIR-CD crops not found at")
    assert "set FACTORYWATCH_SHARED to the shared/ folder" in last


def test_test_extras_install_what_the_readme_runs_notebooks_with() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    names = {e.split(">")[0].split("=")[0].split("[")[0].strip().lower() for e in extras}
    readme = (ROOT / "notebooks" / "README.md").read_text()
    for tool in ("jupytext", "nbconvert", "nbclient", "ipykernel"):
        assert tool in names
    assert "jupytext --to ipynb --execute" in readme and "FACTORYWATCH_SHARED" in readme
