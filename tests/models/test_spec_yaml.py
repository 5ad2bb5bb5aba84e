"""Spec files: not UTF-8, non-finite numbers, duplicate keys and alias bombs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import ModelSpecError
from geolabel.models.spec import load_spec
from geolabel.testing import write_toy_spec

BOMB = """\
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return write_toy_spec(tmp_path / "toy.yaml", tile_size=64)


def test_not_utf8_names_the_byte(toy: Path) -> None:
    toy.write_bytes(toy.read_bytes().replace(b"toy", b"t\xe9y", 1))
    with pytest.raises(ModelSpecError, match=r"not UTF-8 text \(byte 0xe9"):
        load_spec(toy)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN"])
def test_non_finite_numbers_name_the_key(toy: Path, value: str) -> None:
    text = toy.read_text()
    assert "  tile_size: 64\n" in text
    toy.write_text(
        text.replace("  tile_size: 64\n", f"  tile_size: 64\n  scale: {value}\n")
    )
    with pytest.raises(ModelSpecError, match=r"input\.scale: .* not a finite number"):
        load_spec(toy)


def test_duplicate_keys_refused(toy: Path) -> None:
    toy.write_text(toy.read_text() + "name: other\n")
    with pytest.raises(ModelSpecError, match="duplicate key 'name'"):
        load_spec(toy)


def test_alias_bomb_bounded(toy: Path) -> None:
    toy.write_text(toy.read_text() + "metrics:\n" + _indent(BOMB))
    t0 = time.perf_counter()
    with pytest.raises(ModelSpecError, match="alias bomb"):
        load_spec(toy)
    assert time.perf_counter() - t0 < 2


def test_serve_client_spec_refuses_the_bomb(tmp_path: Path, toy: Path) -> None:
    toy.write_text(toy.read_text() + "metrics:\n" + _indent(BOMB))
    out = tmp_path / "client.yaml"
    args = ["serve", "-m", str(toy), "--host", "127.0.0.1", "--port", "0"]
    r = CliRunner().invoke(cli, [*args, "--client-spec", str(out)])
    assert r.exit_code == 2 and "alias bomb" in r.stderr and not out.exists()
    assert r.stderr.startswith(f"geolabel: error: {toy}: ")


def _indent(text: str) -> str:
    return "".join("  " + line + "\n" for line in text.splitlines())
