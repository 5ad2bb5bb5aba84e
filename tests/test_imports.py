"""The import contract: imports point one way, no circle, no hidden function-level imports.

* the import-linter layers contract in pyproject.toml (``[tool.importlinter]``) is kept;
* no module imports itself back through others (no cycle in the module graph);
* no function inside ``src/geolabel`` imports a geolabel module, except the CLI
  (which imports the library lazily so ``geolabel --help`` stays quick, STYLE §8) and
  imports of modules that need an optional dependency (torch, distributed, ...) at
  import time.
"""

from __future__ import annotations

import ast
import graphlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "geolabel"

importlinter_cli = pytest.importorskip(
    "importlinter.cli", reason="needs the [dev] extra (import-linter)"
)
grimp = pytest.importorskip("grimp", reason="needs the [dev] extra (import-linter)")


def optional_dependencies() -> set[str]:
    """Import names of the distributions only an extra (not ``dev``) installs."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        out = set()
        for r in reqs:
            name = r.split(";")[0]
            for sep in "<>=!~[ ":
                name = name.split(sep)[0]
            out.add(name.strip().lower().replace("-", "_"))
        return out

    extras = {
        n
        for extra, reqs in meta["optional-dependencies"].items()
        if extra != "dev"
        for n in names(reqs)
    }
    return extras - names(meta["dependencies"])


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """Modules an import statement may load (``from a import b``: ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level or not node.module:
        return []
    return [node.module, *(f"{node.module}.{a.name}" for a in node.names)]


def _function_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.extend(
                sub
                for sub in ast.walk(node)
                if isinstance(sub, ast.Import | ast.ImportFrom)
            )
    return found


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Imports run when the module is imported (``if TYPE_CHECKING`` blocks aside)."""
    out: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.extend(_imported(node))
        elif isinstance(node, ast.Try):
            out.extend(
                name
                for sub in node.body
                if isinstance(sub, ast.Import | ast.ImportFrom)
                for name in _imported(sub)
            )
    return out


def lazy_import_problems(root: Path, package: str, optional: set[str]) -> list[str]:
    """Function-level imports of ``package`` modules under ``root`` that are not
    allowed (see the module docstring); one ``path:line: module`` line each."""
    trees = {
        _module_name(p, root): (p, ast.parse(p.read_text(), str(p)))
        for p in sorted(root.rglob("*.py"))
    }
    top = {name: _module_level_imports(tree) for name, (_, tree) in trees.items()}
    needs_optional: dict[str, bool] = {}

    def needs(name: str, seen: frozenset[str] = frozenset()) -> bool:
        """``name`` (or a package module it imports at import time) imports an
        optional dependency at module level."""
        if name not in trees or name in seen:
            return False
        if name not in needs_optional:
            deps = top[name]
            needs_optional[name] = any(
                d.split(".")[0] in optional for d in deps
            ) or any(
                needs(d, seen | {name}) for d in deps if d.split(".")[0] == package
            )
        return needs_optional[name]

    problems = []
    for name, (path, tree) in trees.items():
        if name == f"{package}.cli" or name.startswith(f"{package}.cli."):
            continue  # the CLI imports the library lazily on purpose
        for node in _function_imports(tree):
            loads = _imported(node)
            if not loads or loads[0].split(".")[0] != package:
                continue
            if not any(needs(n) for n in loads):
                rel = path.relative_to(root.parent)
                problems.append(f"{rel}:{node.lineno}: {loads[0]}")
    return problems


def test_the_layers_contract_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code = importlinter_cli.lint_imports(
        config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
    )
    assert code == 0, capsys.readouterr().out


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph("geolabel", exclude_type_checking_imports=True)
    deps = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    try:
        graphlib.TopologicalSorter(deps).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_no_function_level_imports_of_geolabel_modules() -> None:
    problems = lazy_import_problems(SRC, "geolabel", optional_dependencies())
    assert not problems, "import these at the top of the module:\n" + "\n".join(
        problems
    )


def test_the_lazy_import_check_catches_one(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("def main():\n    import pkg.low\n")
    (pkg / "heavy.py").write_text("import torch\n")
    (pkg / "uses_heavy.py").write_text("from pkg import heavy\n")
    (pkg / "low.py").write_text(
        "def f():\n"
        "    from pkg.uses_heavy import heavy\n"  # optional (through uses_heavy): fine
        "    from pkg import heavy\n"  # fine
        "    import json\n"  # not geolabel's: fine
        "    from pkg import low\n"  # hidden: flagged
        "    from pkg.low import f\n"  # flagged
    )
    assert lazy_import_problems(pkg, "pkg", {"torch"}) == [
        "pkg/low.py:5: pkg",
        "pkg/low.py:6: pkg.low",
    ]
    assert "torch" in optional_dependencies()
    assert "numpy" not in optional_dependencies()
