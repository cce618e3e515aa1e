"""The architecture, kept by tests that read the package's source.

- Layers import only downward: the runtime imports no store, the stores import no
  adapter, only the zarr adapters import zarr (README, "Architecture").
- No module reads an underscored attribute of another object: modules use each
  other through public, documented names (``self._x`` and ``super()._x`` are a
  class's own business).
- Importing aiostore touches no import machinery.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "aiostore"


def modules() -> dict[str, ast.Module]:
    """Dotted module name -> syntax tree, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return found


MODULES = modules()


def imports_of(name: str, tree: ast.Module) -> set[str]:
    """Every module ``name`` imports (absolute names), at any depth of the file."""
    is_package = (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.add(module)
            # ``from aiostore.stores import lmdb`` imports the module aiostore.stores.lmdb
            out.update(
                f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES
            )
    return out


def layer(module: str) -> str:
    for prefix, name in [
        ("aiostore._runtime", "runtime"),
        ("aiostore.errors", "base"),
        ("aiostore.keys", "base"),
        ("aiostore._protocol", "protocol"),
        ("aiostore.abc", "protocol"),
        ("aiostore.stores", "stores"),
        ("aiostore._zarr2meta", "hierarchy"),
        ("aiostore.copying", "hierarchy"),
        ("aiostore.http", "http"),
        ("aiostore.cli", "cli"),
        ("aiostore.__main__", "cli"),
        ("aiostore.sync", "sync"),
        ("aiostore.zarr3", "zarr3"),
        ("aiostore.testing", "testing"),
    ]:
        if module == prefix or module.startswith(prefix + "."):
            return name
    return "top"  # the package's __init__


#: What each layer may import from the package (its own layer always).
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "runtime": set(),
    "protocol": {"base", "runtime"},
    "stores": {"base", "runtime", "protocol"},
    "hierarchy": {"base", "runtime", "protocol", "stores"},
    "sync": {"base", "runtime", "protocol", "stores", "hierarchy"},
    "zarr3": {"base", "runtime", "protocol", "stores"},
    "testing": {"base", "protocol", "stores", "sync"},
    "http": {"base", "runtime", "protocol", "stores", "hierarchy"},
    "cli": {"base", "runtime", "protocol", "stores", "hierarchy", "http"},
    "top": {"base", "runtime", "protocol", "stores", "hierarchy"},
}


def test_the_layers_are_what_the_readme_says() -> None:
    assert {layer(m) for m in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = layer(module)
    wrong = sorted(
        f"{imported} ({layer(imported)})"
        for imported in imports_of(module, MODULES[module])
        if imported.split(".")[0] == "aiostore" and layer(imported) not in ALLOWED[own] | {own}
    )
    assert not wrong, f"{module} ({own}) imports {', '.join(wrong)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_zarr_adapters_import_zarr(module: str) -> None:
    zarr_imports = {m for m in imports_of(module, MODULES[module]) if m.split(".")[0] == "zarr"}
    if layer(module) == "zarr3" or module == "aiostore.sync._zarr2":
        return
    assert not zarr_imports, f"{module} imports {zarr_imports}"


def foreign_private_reads(tree: ast.Module) -> list[str]:
    """``x._name`` where ``x`` is not ``self``, ``cls``, ``super()``, ``type(...)`` or a module."""
    modules_here = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules_here.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules_here.update(alias.asname or alias.name for alias in node.names)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or owner.id in modules_here):
            continue
        if (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id in ("super", "type")
        ):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_reads_another_objects_private_attributes(module: str) -> None:
    assert foreign_private_reads(MODULES[module]) == []


def test_the_scan_finds_a_foreign_private_read() -> None:
    tree = ast.parse("def f(store):\n    return store._key('a'), self._own, super()._hook\n")
    assert foreign_private_reads(tree) == ["line 2: store._key"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    lines = len(path.read_text().splitlines())
    assert lines <= 450, f"{module} has {lines} lines: split it along its seams (README, Architecture)"


def test_importing_aiostore_leaves_the_import_machinery_alone() -> None:
    script = (
        "import sys; before = list(sys.meta_path), list(sys.path_hooks)\n"
        "import aiostore, aiostore.sync, aiostore.abc, aiostore.testing\n"
        "aiostore.sync.MemoryStore()['a'] = b'1'  # the first sync store registers with zarr 2, if any\n"
        "assert (list(sys.meta_path), list(sys.path_hooks)) == before, sys.meta_path\n"
        "assert 'zarr' not in sys.modules or 'zarr._storage.store' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr
