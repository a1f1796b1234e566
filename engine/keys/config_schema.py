"""A rule's ``Config`` class read statically from source: its fields, their annotations and
literal defaults — without importing the rule module (which may import torch).

Used to check ``--set`` before anything runs (a field the class doesn't have, a value of the
wrong type) and to apply defaults to a config, so that a field written at its default and a
field left out give the same config.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import msgspec

# Base classes that end the walk up the class hierarchy.
_ROOTS = {"Config", "Struct"}


class FieldInfo(msgspec.Struct, frozen=True):
    name: str
    annotation: str  # as written, e.g. "int", "float | None", "list[int]"
    has_default: bool
    default_known: bool = False  # the default is a literal this module could read
    default: Any = None


class ConfigSchema(msgspec.Struct, frozen=True):
    """The fields of a rule's config class (parents' first), and where the class lives."""

    name: str
    file: str
    fields: dict[str, FieldInfo]

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields.values() if f.default_known}


def _parse(root: Path, rel: str) -> ast.Module | None:
    try:
        return ast.parse((root / rel).read_text(), filename=rel)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _module_file(root: Path, module: str) -> str | None:
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts) / "__init__.py"):
        if (root / candidate).is_file():
            return candidate.as_posix()
    return None


def _absolute(rel_file: str, module: str, level: int) -> str:
    if level == 0:
        return module
    parts = list(Path(rel_file).with_suffix("").parts)
    base = parts if parts[-1] == "__init__" else parts[:-1]
    base = [p for p in base if p != "__init__"]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def _find_class(root: Path, rel: str, name: str, depth: int = 0) -> tuple[str, ast.ClassDef] | None:
    """The class ``name`` as seen from module file ``rel``: defined there or imported from a
    project module (followed through re-exports)."""
    tree = _parse(root, rel)
    if tree is None or depth > 8:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return rel, node
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    target = _module_file(root, _absolute(rel, node.module or "", node.level))
                    if target is not None:
                        return _find_class(root, target, alias.name, depth + 1)
    return None


def _annotation_name(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(".")[-1]
    return None


def _default(node: ast.expr | None) -> tuple[bool, bool, Any]:
    """(has a default, the default is known, its value)."""
    if node is None:
        return False, False, None
    if isinstance(node, ast.Call) and _annotation_name(node.func) == "field":
        for kw in node.keywords:
            if kw.arg == "default":
                return _default(kw.value)
            if kw.arg == "default_factory":
                factory = _annotation_name(kw.value)
                if factory in ("list", "dict", "set", "tuple"):
                    return True, True, [] if factory in ("list", "set", "tuple") else {}
                return True, False, None
        return False, False, None
    try:
        return True, True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return True, False, None


def _fields(root: Path, rel: str, cls: ast.ClassDef, depth: int = 0) -> dict[str, FieldInfo]:
    fields: dict[str, FieldInfo] = {}
    for base in cls.bases:
        base_name = _annotation_name(base)
        if base_name is None or base_name in _ROOTS or depth > 8:
            continue
        found = _find_class(root, rel, base_name)
        if found is not None:
            fields.update(_fields(root, found[0], found[1], depth + 1))
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            annotation = ast.unparse(stmt.annotation)
            if annotation.startswith(("ClassVar", "typing.ClassVar")):
                continue
            has, known, value = _default(stmt.value)
            fields[stmt.target.id] = FieldInfo(stmt.target.id, annotation, has, known, value)
    return fields


def config_schema(root: str | Path, rule_file: str, rule_func: str) -> ConfigSchema | None:
    """The schema of the class annotating the rule's ``config`` parameter; None when the rule
    takes no config, or its class can't be read statically (then nothing is checked)."""
    root = Path(root)
    tree = _parse(root, rule_file)
    if tree is None:
        return None
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == rule_func), None)
    if func is None:
        return None
    arg = next((a for a in [*func.args.args, *func.args.kwonlyargs] if a.arg == "config"), None)
    if arg is None:
        return ConfigSchema(name="", file=rule_file, fields={})
    name = _annotation_name(arg.annotation)
    found = _find_class(root, rule_file, name) if name else None
    if found is None:
        return None
    rel, cls = found
    return ConfigSchema(name=cls.name, file=rel, fields=_fields(root, rel, cls))


def apply_defaults(schema: ConfigSchema | None, config: Any) -> Any:
    """``config`` with every literal default of its class filled in: ``{"alpha": 1}`` and
    ``{"alpha": 1, "gamma": 0}`` become the same when ``gamma`` defaults to 0."""
    if schema is None or not isinstance(config, dict | type(None)):
        return config
    merged = schema.defaults()
    merged.update(config or {})
    return merged


# ------------------------------------------------------------------ type checks for --set

_SIMPLE: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "tuple": (list,),
    "None": (type(None),),
}


def value_matches(annotation: str, value: Any) -> bool | None:
    """Whether ``value`` (parsed from the command line) fits ``annotation``: True, False, or
    None when the annotation is beyond this static check (a Struct, a type alias...)."""
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    return _matches(node, value)


def _matches(node: ast.expr, value: Any) -> bool | None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [_matches(node.left, value), _matches(node.right, value)]
        return True if True in sides else None if None in sides else False
    if isinstance(node, ast.Constant) and node.value is None:
        return value is None
    if isinstance(node, ast.Subscript):
        outer = _annotation_name(node.value)
        if outer in ("Optional",):
            return True if value is None else _matches(node.slice, value)
        if outer == "Union":
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            results = [_matches(p, value) for p in parts]
            return True if True in results else None if None in results else False
        if outer == "Literal":
            options = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            try:
                return value in [ast.literal_eval(o) for o in options]
            except ValueError:
                return None
        if outer in ("list", "List", "tuple", "Tuple", "Sequence"):
            return isinstance(value, list)
        if outer in ("dict", "Dict", "Mapping"):
            return isinstance(value, dict)
        return None
    name = _annotation_name(node)
    if name in _SIMPLE:
        if name in ("int", "float") and isinstance(value, bool):
            return False
        return isinstance(value, _SIMPLE[name])
    if name == "Any":
        return True
    return None
