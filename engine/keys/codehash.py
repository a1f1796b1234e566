"""Static code digests: a rule's source plus every project-local function, class and constant
it reaches, transitively, read from source files without importing them.

Sources are normalized by parsing and unparsing with docstrings removed, so comments,
docstrings and formatting do not count. Names that resolve to third-party modules are
collected (for the environment digest); standard-library and builtin names are ignored.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.cache.digest import canonical_bytes, digest_bytes
from mlbuild.cache.records import CodeManifest, FunctionEntry
from mlbuild.engine.errors import UserError
from mlbuild.rules.rule import Resources, RuleOptions

_STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}
Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign | ast.AnnAssign


class _Module:
    """One parsed project module: its top-level definitions and import bindings."""

    def __init__(self, name: str, file: str, tree: ast.Module) -> None:
        self.name = name
        self.file = file
        self.defs: dict[str, Def] = {}
        # local name -> (module, attribute or None)
        self.imports: dict[str, tuple[str, str | None]] = {}
        self._collect(tree.body)

    def _collect(self, body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            self.defs[n.id] = node
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = (alias.name, None)
                    else:
                        top = alias.name.split(".")[0]
                        self.imports[top] = (top, None)
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(node.module or "", node.level)
                for alias in node.names:
                    if alias.name != "*":
                        self.imports[alias.asname or alias.name] = (base, alias.name)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                self._collect(node.body)
                for extra in ("orelse", "finalbody"):
                    self._collect(getattr(node, extra, []))
                for handler in getattr(node, "handlers", []):
                    self._collect(handler.body)

    def _absolute(self, module: str, level: int) -> str:
        if level == 0:
            return module
        parts = self.name.split(".")
        is_pkg = self.file.endswith("__init__.py")
        base = parts if is_pkg else parts[:-1]
        base = base[: len(base) - (level - 1)] if level > 1 else base
        return ".".join([*base, module] if module else base)


def _strip_docstrings(node: ast.AST) -> ast.AST:
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                n.body = body[1:] or [ast.Pass()]
    return node


def normalized_source(node: ast.AST) -> str:
    """Source with comments, docstrings and formatting normalized away."""
    import copy

    return ast.unparse(_strip_docstrings(copy.deepcopy(node)))


class CodeResult(msgspec.Struct):
    manifest: CodeManifest
    digest: str
    sources: dict[str, str]  # source digest -> normalized source text
    files: list[str]  # workspace-relative files read
    options: RuleOptions
    params: list[tuple[str, bool]]  # the rule's parameters and whether each has a default


class CodeHasher:
    """Computes code digests for rules of one workspace; parsed modules are shared."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._modules: dict[str, _Module | None] = {}

    def module_for_file(self, rel: str) -> str:
        p = Path(rel)
        parts = list(p.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        return ".".join(parts)

    def _module(self, name: str) -> _Module | None:
        """The project module of that dotted name, or None if it is not project-local."""
        if name in self._modules:
            return self._modules[name]
        mod = None
        rel_parts = name.split(".")
        for candidate in (Path(*rel_parts).with_suffix(".py"), Path(*rel_parts) / "__init__.py"):
            path = self.root / candidate
            if name and path.is_file():
                try:
                    tree = ast.parse(path.read_text(), filename=str(path))
                except SyntaxError as exc:
                    raise UserError(f"{candidate.as_posix()}:{exc.lineno}: syntax error: {exc.msg}") from None
                mod = _Module(name, candidate.as_posix(), tree)
                break
        self._modules[name] = mod
        return mod

    def _is_project_package(self, name: str) -> bool:
        return bool(name) and (self.root / Path(*name.split("."))).is_dir()

    def digest(self, rule_file: str, func: str, label: str = "") -> CodeResult:
        modname = self.module_for_file(rule_file)
        mod = self._module(modname)
        who = f"{label}: " if label else ""
        if mod is None:
            raise UserError(f"{who}rule file {rule_file} not found")
        node = mod.defs.get(func)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise UserError(f"{who}{rule_file} defines no function {func!r}")
        options = self._rule_options(node, mod, label or f"{rule_file}:{func}")
        entries: dict[str, FunctionEntry] = {}
        sources: dict[str, str] = {}
        third_party: set[str] = set()
        files: set[str] = set()
        todo: list[tuple[_Module, str]] = [(mod, func)]
        while todo:
            m, name = todo.pop()
            qual = f"{m.name}.{name}"
            if qual in entries:
                continue
            d = m.defs[name]
            src = normalized_source(d)
            sdigest = digest_bytes(src.encode())
            sources[sdigest] = src
            entries[qual] = FunctionEntry(qual, m.file, sdigest)
            files.add(m.file)
            for ref in self._references(d):
                todo.extend(self._resolve(m, ref, third_party, files, entries, sources))
        manifest = CodeManifest(
            rule=f"{rule_file}:{func}",
            functions=sorted(entries.values(), key=lambda e: e.name),
            imports=sorted(third_party),
        )
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
        params = [(a.arg, d) for a, d in zip(positional, defaults, strict=True)]
        params += [(a.arg, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        return CodeResult(
            manifest, digest_bytes(canonical_bytes(manifest)), sources, sorted(files), options, params
        )

    def _references(self, node: ast.AST) -> list[list[str]]:
        """Dotted name chains used in ``node`` (``a.b.c`` → ``["a", "b", "c"]``)."""
        chains: list[list[str]] = []
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute):
                chain: list[str] = []
                cur: ast.AST = n
                while isinstance(cur, ast.Attribute):
                    chain.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name):
                    chains.append([cur.id, *reversed(chain)])
            elif isinstance(n, ast.Name):
                chains.append([n.id])
        return chains

    def _resolve(
        self,
        m: _Module,
        chain: list[str],
        third_party: set[str],
        files: set[str],
        entries: dict[str, FunctionEntry],
        sources: dict[str, str],
    ) -> list[tuple[_Module, str]]:
        head = chain[0]
        if head in m.defs:
            return [(m, head)]
        if head in m.imports:
            module, attr = m.imports[head]
            return self._resolve_import(module, [attr] if attr else [], chain[1:], third_party, files, entries, sources)
        return []

    def _resolve_import(
        self,
        module: str,
        first: list[str],
        rest: list[str],
        third_party: set[str],
        files: set[str],
        entries: dict[str, FunctionEntry],
        sources: dict[str, str],
        depth: int = 0,
    ) -> list[tuple[_Module, str]]:
        top = module.split(".")[0]
        if not top:
            return []
        if self._module(module) is None and not self._is_project_package(module):
            if top not in _STDLIB:
                third_party.add(top)
            return []
        # Walk attributes through project modules until one names a definition.
        names = first + rest
        current = module
        for i, attr in enumerate(names):
            mod = self._module(current)
            if mod is not None:
                if attr in mod.defs:
                    return [(mod, attr)]
                if attr in mod.imports and depth < 20:
                    sub, sub_attr = mod.imports[attr]
                    return self._resolve_import(
                        sub, [sub_attr] if sub_attr else [], names[i + 1 :], third_party, files, entries, sources, depth + 1
                    )
            nxt = f"{current}.{attr}"
            if self._module(nxt) is None and not self._is_project_package(nxt):
                break
            current = nxt
        # A project module used as a whole (or dynamically): its entire source counts.
        mod = self._module(current)
        if mod is not None:
            qual = f"{mod.name}.*"
            if qual not in entries:
                src = ast.unparse(_strip_docstrings(ast.parse((self.root / mod.file).read_text())))
                sdigest = digest_bytes(src.encode())
                sources[sdigest] = src
                entries[qual] = FunctionEntry(qual, mod.file, sdigest)
                files.add(mod.file)
                return [(mod, n) for n in mod.defs]
        return []

    def _rule_options(self, node: ast.FunctionDef | ast.AsyncFunctionDef, mod: _Module, where: str) -> RuleOptions:
        for dec in node.decorator_list:
            call = dec if isinstance(dec, ast.Call) else None
            fn = call.func if call else dec
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            if name is None:
                continue
            imported = mod.imports.get(name)
            if name != "rule" and not (imported and imported[1] == "rule"):
                continue
            kwargs: dict[str, Any] = {}
            for kw in call.keywords if call else []:
                if kw.arg is None:
                    raise UserError(f"{where}: @rule(**...) is not allowed; options must be literal")
                kwargs[kw.arg] = self._literal(kw.value, where)
            try:
                return msgspec.convert(kwargs, RuleOptions)
            except msgspec.ValidationError as exc:
                raise UserError(f"{where}: bad @rule option: {exc}") from None
        raise UserError(f"{where}: {node.name} is not decorated with @rule")

    def _literal(self, node: ast.expr, where: str) -> Any:
        if isinstance(node, ast.Call):
            fn = node.func
            fname = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if fname == "Resources" and not node.args:
                return msgspec.to_builtins(
                    Resources(**{kw.arg: self._literal(kw.value, where) for kw in node.keywords if kw.arg})
                )
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise UserError(f"{where}: @rule options must be literals (got {ast.unparse(node)!r})") from None
