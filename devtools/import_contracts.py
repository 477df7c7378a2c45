"""An import-linter contract type of ours: no private name crosses a package.

`lint-imports` (run by `make test`) loads it from `pyproject.toml`::

    [tool.importlinter]
    contract_types = ["private_names: devtools.import_contracts.PrivateNamesContract"]

A name is private when it starts with one underscore (``_x``, not ``__x__``). A private
module or name belongs to the package that holds it: ``deepae.apps._base`` to
``deepae.apps``, ``_units`` in ``deepae.cli.main`` to ``deepae.cli``, and a private name in
a top-level module such as ``deepae.training`` to that module. Only modules inside the owner
may use it: ``from deepae.training import _fit`` in ``deepae.cli`` breaks the contract, and so
does ``training._fit`` reached through ``from deepae import training``. The root's own
private modules (``deepae._validation``, ``deepae._version``) belong to the whole package.

The check reads each module's source with `ast` (grimp's import details show only the
first line of a multi-line import).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from importlinter import Contract, ContractCheck, fields, output


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _owner(parts: list[str], packages: set[str]) -> str | None:
    """The package (or top-level module) that owns the first private part of a dotted name,
    or None if no part is private."""
    for i, part in enumerate(parts):
        if not _is_private(part):
            continue
        if i <= 1:  # the root's own private module (deepae._validation)
            return parts[0]
        # the nearest package that holds it; a top-level module (deepae.persistence) is its
        # own package
        for k in range(i, 1, -1):
            prefix = ".".join(parts[:k])
            if prefix in packages or k == 2:
                return prefix
    return None


def _inside(module: str, owner: str) -> bool:
    return module == owner or module.startswith(owner + ".")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _source(module: str, root_dir: Path) -> Path | None:
    """The file of `module`, found without importing anything (importing the package would
    start TensorFlow)."""
    base = root_dir.joinpath(*module.split(".")[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _violations(module: str, root: str, root_dir: Path, packages: set[str]):
    path = _source(module, root_dir)
    if path is None:
        return
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    bound: dict[str, str] = {}  # local name -> the root's module it names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root:
                    yield from _check(module, alias.name, node.lineno, packages)
                    # `import deepae.training` binds `deepae`; `as t` binds `t`
                    bound[alias.asname or root] = alias.name if alias.asname else root
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            if source.split(".")[0] != root:
                continue
            for alias in node.names:
                yield from _check(module, f"{source}.{alias.name}", node.lineno, packages)
                bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    seen = set()
    for node in ast.walk(tree):  # attribute chains from a bound module: t._x, deepae.a._b.c
        if not isinstance(node, ast.Attribute):
            continue
        attrs, base = [], node
        while isinstance(base, ast.Attribute):
            attrs.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in bound:
            continue
        dotted = ".".join([bound[base.id], *reversed(attrs)])
        if any(_is_private(a) for a in attrs) and (node.lineno, dotted) not in seen:
            seen.add((node.lineno, dotted))
            yield from _check(module, dotted, node.lineno, packages)


def _check(module: str, dotted: str, lineno: int, packages: set[str]):
    owner = _owner(dotted.split("."), packages)
    if owner is not None and not _inside(module, owner):
        yield {"importer": module, "line": lineno, "name": dotted, "owner": owner}


class PrivateNamesContract(Contract):
    """No module uses a private module or name that belongs to another package."""

    type_name = "private_names"

    containers = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        found = []
        for root in self.containers:  # type: ignore[attr-defined]
            spec = importlib.util.find_spec(root)  # a top-level name: nothing is imported
            root_dir = Path(next(iter(spec.submodule_search_locations)))
            modules = {m for m in graph.modules if _inside(m, root)}
            packages = {m for m in modules
                        if (root_dir.joinpath(*m.split(".")[1:]) / "__init__.py").is_file()}
            for module in sorted(modules):
                found.extend(_violations(module, root, root_dir, packages))
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for v in check.metadata["found"]:
            output.print_error(f"{v['importer']}:{v['line']} uses {v['name']}, private to "
                               f"{v['owner']}", bold=False)
            output.new_line()
