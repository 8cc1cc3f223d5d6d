"""Error messages are one line, never cut mid-word, and TOML type errors name the key (#14)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo.cli import main
from geo.config import load_config
from geo.errors import ConfigError, one_line


def test_one_line_cuts_at_a_word() -> None:
    text = "GDAL: " + " ".join(f"word{i:03d}" for i in range(100))
    out = one_line(text, 300)
    assert len(out) <= 300 and out.endswith(" …")
    assert out[:-2].split(" ")[-1] in text.split(" ")  # the last word is whole


def test_unexpected_error_message_is_not_cut_mid_word(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    import geo.config

    words = " ".join(f"segment{i:03d}" for i in range(80))

    def boom(_path: object) -> None:
        raise RuntimeError(words)

    monkeypatch.setattr(geo.config, "load_config", boom)
    r = CliRunner().invoke(main, ["run", str(tmp_path / "x.toml")])
    assert r.exit_code == 1
    msg = r.stderr.split("RuntimeError: ", 1)[1].split(" (run again with -v")[0]
    assert msg.endswith(" …")
    assert all(w in words.split(" ") for w in msg[:-2].split(" "))


@pytest.mark.parametrize(("body", "key"), [
    ('[grid]\nresolution_m = "ten"\n', "[grid] resolution_m"),
    ("[match]\niou_threshold = true\n", "[match] iou_threshold"),
    ('[source]\ncollections = "sentinel-2-l2a"\n', "[source] collections"),
])
def test_toml_type_error_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    p = tmp_path / "site.toml"
    p.write_text(body)
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(p)
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 1 and key in r.stderr and "Traceback" not in r.stderr
