"""The house, read from the code: ``implementations/`` (the contract, its math and the backends)
never imports the harness; no module reaches into another's private names; each module stays
short enough to read; project imports sit at the top of a module, where readers and tools see them."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

PACKAGES = ("bench", "implementations")
MAX_LINES = 500
# modules allowed over MAX_LINES, with the reason (none today)
LONG_MODULES: dict[str, str] = {}
# project imports inside a function, each on purpose
DEFERRED = {
    # Ctrl-C during the heavy imports (torch, JAX) must end the command cleanly: cli is imported inside
    # the handler's reach
    "bench/__main__.py": "the CLI's import is guarded against a Ctrl-C",
    # the kernels module imports numba (seconds of start-up) and compiles on first call: only a numba row
    # pays for it
    "implementations/numba_backend.py": "numba's kernels load only when a numba row runs",
}


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


MODULES = dict(_modules())


def _imports(tree):
    """``(node, [module names])`` of every import in ``tree``, relative ones resolved to a leading dot."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            yield node, ["." * node.level + (node.module or "")]


def _is_project(name: str) -> bool:
    return name.startswith(".") or name.split(".")[0] in PACKAGES


def test_every_module_is_found():
    assert ({"bench/cli.py", "bench/runner.py", "implementations/base.py", "implementations/reference.py"}
            <= set(MODULES))


@pytest.mark.parametrize("rel", [r for r in MODULES if r.startswith("implementations/")])
def test_implementations_never_import_the_harness(rel):
    tree = ast.parse(MODULES[rel].read_text())
    bad = [ast.unparse(node) for node, names in _imports(tree)
           if any(n.split(".")[0] == "bench" or n.startswith("..") for n in names)]
    assert not bad, f"{rel} imports the harness: {bad}"


@pytest.mark.parametrize("rel", list(MODULES))
def test_no_module_imports_another_modules_private_name(rel):
    """``from x import _name`` is refused; ``from . import _module`` (a private module of the same
    package, such as ``implementations/_optim.py``) is the package's own business."""
    path = MODULES[rel]
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if not alias.name.startswith("_"):
                    continue
                package_dir = path.parent if node.level == 1 and node.module is None else None
                if package_dir is not None and (package_dir / f"{alias.name}.py").exists():
                    continue
                bad.append(ast.unparse(node))
    assert not bad, f"{rel} imports private names: {bad}"


@pytest.mark.parametrize("rel", list(MODULES))
def test_no_module_is_over_500_lines(rel):
    lines = len(MODULES[rel].read_text().splitlines())
    assert lines <= MAX_LINES or rel in LONG_MODULES, f"{rel}: {lines} lines (split it by concern)"


@pytest.mark.parametrize("rel", list(MODULES))
def test_project_imports_are_at_module_top(rel):
    tree = ast.parse(MODULES[rel].read_text())
    top = {id(node) for node in tree.body}
    inner = [f"line {node.lineno}: {ast.unparse(node)}" for node, names in _imports(tree)
             if id(node) not in top and any(_is_project(n) for n in names)]
    assert not inner or rel in DEFERRED, f"{rel} imports project modules inside functions: {inner}"


def test_the_named_exceptions_still_exist():
    for rel in (*LONG_MODULES, *DEFERRED):
        assert rel in MODULES, f"{rel} is named as an exception but no longer exists"
