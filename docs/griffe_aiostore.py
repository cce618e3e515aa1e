"""Griffe extension that reads aiostore's docstrings the way they are written.

mkdocs.yml loads it for the API reference. Griffe reads the package statically
(nothing is imported, so zarr need not be installed); this extension fills in what
a static reading misses and turns Sphinx markup into Markdown:

- ``#:`` comments above an attribute become its docstring (as Sphinx reads them);
- a public alias such as ``DictStore = MemoryStore`` with no comment is documented
  as another name for its target;
- the sync twins of the hierarchy functions in ``aiostore.sync`` -- made by
  ``_hierarchy_twin(fn, doc)`` -- get the parameters of what they wrap and their
  docstrings;
- roles such as ``:class:`Store``` become cross-references (code if the target is
  private, built-in or in another package), bare ``>>>`` blocks become ``pycon``
  code blocks, and an ``::`` literal block becomes a ``python`` one.

It warns (which fails ``mkdocs build --strict``) for a role in a published
docstring whose target does not exist, and -- for the modules its ``check_exports``
option lists -- for a name in ``__all__`` that ends up without a docstring or with
an ``__init__`` it cannot read.
"""

from __future__ import annotations

import ast
import builtins
import html
import inspect
import logging
import re
import sys
from typing import Any

import griffe

logger = logging.getLogger("mkdocs.plugins.griffe_aiostore")

PACKAGE = "aiostore"

_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`")
_HEADER_RULE = re.compile(r"^-{3,}\s*$")


def _is_private(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


class AiostoreDocs(griffe.Extension):
    """The extension; ``check_exports`` lists the modules whose whole ``__all__`` must have docstrings."""

    def __init__(self, check_exports: list[str] | None = None) -> None:
        self._check_exports = list(check_exports or [])
        # (object, attribute name, AST call) of each twin assignment seen while visiting.
        self._twins: list[tuple[griffe.Object, str, ast.Call]] = []

    # -- visiting: remember the twin assignments ---------------------------------------

    def on_attribute_instance(self, *, node: Any, attr: griffe.Attribute, **kwargs: Any) -> None:
        value = getattr(node, "value", None)
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)):
            return
        if value.func.id == "_hierarchy_twin" and attr.parent is not None:
            self._twins.append((attr.parent, attr.name, value))

    # -- once the package is loaded -----------------------------------------------------

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != PACKAGE:
            return
        for parent, name, call in self._twins:
            self._replace_twin(parent, name, call, loader)
        objects = list(_walk(pkg))
        for obj in objects:
            if isinstance(obj, griffe.Attribute) and obj.docstring is None:
                _attribute_docstring(obj, loader)
        published = _published(objects)
        for obj in objects:
            if obj.docstring is not None:
                warn = obj.path in published or not _is_private(obj.path)
                obj.docstring.value = _markdown(obj, obj.docstring.value, loader, warn=warn)
        for path in self._check_exports:
            module = _lookup(loader, path) if path.partition(".")[0] == PACKAGE else None
            if not isinstance(module, griffe.Module):
                logger.warning("griffe_aiostore: check_exports names %s, which is not a module", path)
            else:
                _check_exports(module, loader)

    def _replace_twin(
        self, parent: griffe.Object, name: str, call: ast.Call, loader: griffe.GriffeLoader
    ) -> None:
        """Make ``name = _hierarchy_twin(fn, doc)`` the function it makes."""
        old = parent.members[name]
        try:
            wrapped = _lookup(loader, _resolve(parent, ast.unparse(call.args[0])))
        except (griffe.NameResolutionError, KeyError, griffe.AliasResolutionError):
            wrapped = None
        if not isinstance(wrapped, griffe.Function):
            logger.warning("griffe_aiostore: %s: cannot find the function it wraps", old.path)
            return
        params = griffe.Parameters(*wrapped.parameters)
        func = griffe.Function(name, lineno=old.lineno, parameters=params, returns=wrapped.returns)
        if len(call.args) > 1:
            func.docstring = _docstring(inspect.cleandoc(ast.literal_eval(call.args[1])), func, loader)
        func.endlineno = old.endlineno
        parent.set_member(name, func)


def _docstring(text: str, parent: griffe.Object, loader: griffe.GriffeLoader) -> griffe.Docstring:
    """A docstring parsed like those the loader made."""
    return griffe.Docstring(
        text,
        lineno=parent.lineno,
        parser=loader.docstring_parser,
        parser_options=loader.docstring_options,
        parent=parent,
    )


def _published(objects: list[griffe.Object]) -> set[str]:
    """Paths of the objects in private modules that public modules export, and their members."""
    targets = set()
    for module in objects:
        if module.is_module and not _is_private(module.path):
            for name in module.exports or ():
                member = module.members.get(str(name))
                if member is not None and member.is_alias and _is_private(member.target_path):
                    targets.add(member.target_path)
    return {
        obj.path for obj in objects if any(obj.path == t or obj.path.startswith(f"{t}.") for t in targets)
    }


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias:
            yield from _walk(member)


def _lookup(loader: griffe.GriffeLoader, path: str) -> Any:
    obj = loader.modules_collection.get_member(path)
    while obj is not None and obj.is_alias:
        obj = obj.final_target
    return obj


def _resolve(scope: griffe.Object, target: str) -> str:
    """The full path ``target`` names in ``scope`` (inherited class members included)."""
    first, dot, rest = target.partition(".")
    if first == PACKAGE:
        return target
    current: griffe.Object | None = scope
    while current is not None:
        members = current.members
        if isinstance(current, griffe.Class):
            try:
                members = current.all_members
            except Exception:  # unresolvable base: fall back to own members
                pass
        if first in members:
            member = members[first]
            path = member.target_path if member.is_alias else member.path
            return path + dot + rest
        if current.is_module:
            break  # as in Python: a module's globals, then built-ins and imports of other modules
        if current.name == first:
            return current.path + dot + rest
        current = current.parent
    raise griffe.NameResolutionError(target)


def _attribute_docstring(attr: griffe.Attribute, loader: griffe.GriffeLoader) -> None:
    """``#:`` comments above the attribute, or "another name for" for a plain alias."""
    lines = attr.module.lines if attr.lineno else []
    comment: list[str] = []
    index = (attr.lineno or 0) - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        comment.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    if comment:
        attr.docstring = _docstring("\n".join(comment), attr, loader)
    elif isinstance(attr.value, griffe.ExprName) and attr.parent is not None and attr.parent.is_module:
        attr.docstring = _docstring(f"Another name for :class:`{attr.value.name}`.", attr, loader)


def _role_html(obj: griffe.Object, match: re.Match[str], loader: griffe.GriffeLoader, warn: bool) -> str:
    """One role as HTML; ``warn`` if it names nothing."""
    role, short, target = match.group(1), match.group(2), match.group(3).strip()
    title = target.rsplit(".", 1)[-1] if short else target
    if role in ("func", "meth"):
        title += "()"
    code = f"<code>{html.escape(title)}</code>"
    try:
        path = _resolve(obj, target)
    except griffe.NameResolutionError:
        first = target.partition(".")[0]
        path = None if hasattr(builtins, first) or first in sys.stdlib_module_names else ""
    if path is None or (path and path.partition(".")[0] != PACKAGE):
        return code  # a built-in, or another package's object
    try:
        found = loader.modules_collection.get_member(path) if path else None
    except (KeyError, griffe.AliasResolutionError):
        found = None
    if found is None:
        if warn:
            logger.warning("griffe_aiostore: %s: %s names nothing", obj.path, match.group(0))
        return code
    # Optional: a link if the reference documents the target (under this path or a public
    # name for it), else just the code.
    return f'<autoref identifier="{path}" optional>{code}</autoref>'


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _markdown(obj: griffe.Object, text: str, loader: griffe.GriffeLoader, *, warn: bool) -> str:
    """Sphinx markup in a numpydoc docstring, made Markdown; ``warn`` about bad roles."""

    def roles(line: str) -> str:
        return _ROLE.sub(lambda match: _role_html(obj, match, loader, warn), line)

    lines = text.split("\n")
    out: list[str] = []
    section = ""
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        pad = " " * _indent(line)
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif in_fence:
            pass
        elif line.strip() and _HEADER_RULE.match(following):
            section = line.strip()
        elif line.lstrip().startswith(">>>") and section != "Examples":
            # A doctest outside an Examples section: a pycon block up to the next blank line.
            out.append(f"{pad}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{pad}```")
            continue
        elif line.rstrip().endswith("::") and i + 2 < len(lines) and not following.strip():
            # An rST literal block: the lines after the blank one, indented deeper than this one.
            j = i + 2
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > len(pad)):
                j += 1
            block = "\n".join(lines[i + 2 : j]).strip("\n").split("\n")
            if block != [""]:
                deeper = min(_indent(b) for b in block if b.strip())
                code = [pad + b[deeper:] for b in block]
                out += [roles(line.rstrip()[:-1]), "", f"{pad}```python", *code, f"{pad}```", ""]
                i = j
                continue
        out.append(line if in_fence else roles(line))
        i += 1
    return "\n".join(out)


def _check_exports(module: griffe.Module, loader: griffe.GriffeLoader) -> None:
    """Every name in ``module.__all__`` resolves to something with a docstring (and a signature)."""
    for name in module.exports or ():
        name = str(name)
        try:
            obj = _lookup(loader, f"{module.path}.{name}")
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            obj = None
        if obj is None:
            logger.warning("griffe_aiostore: %s.__all__ names %r, which is not there", module.path, name)
        elif obj.docstring is None or not obj.docstring.value.strip():
            logger.warning("griffe_aiostore: %s.%s (in __all__) has no docstring", module.path, name)
        elif isinstance(obj, griffe.Class) and isinstance(obj.members.get("__init__"), griffe.Attribute):
            # e.g. an ``__init__ = make_init(...)`` this extension does not know how to read.
            logger.warning("griffe_aiostore: %s.%s: cannot read its __init__'s signature", module.path, name)
