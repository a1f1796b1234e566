"""Static code digests: a rule's source plus every project-local definition it reaches,
transitively, read from source files without importing them.

What a reached name brings in (see docs/keys.md):

- every statement that binds it (``M = 1`` then ``M = M * 5``; both branches of a ``try`` or
  ``if`` that binds it), and every top-level statement that mutates or uses it
  (``TABLE["b"] = 2``, ``LIST.append(3)``, ``N += 1``);
- the import-time side effects of each module consulted (``random.seed(1234)``,
  ``torch.backends.cudnn.benchmark = True``, registering decorators, ``register(Model)``);
- through imports (module level or inside functions; star imports; each branch of a
  ``try``/``except`` import): the definition named, never the whole module for ``m.f``;
- for a class: its shell (bases, decorators, class attributes, method signatures) and the
  bodies of the methods the reached code can call: dunders, and those whose name is used as an
  attribute anywhere in reached code; all of them for a class whose bases are not project
  classes (a framework may call any override, like ``forward``).

Locals shadowing a module-level name are not references to it. Sources are normalized by
parsing and unparsing with docstrings removed: comments, docstrings and formatting do not count.
Names that resolve to third-party modules are collected for the environment digest.
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
from mlbuild.engine.keys.pysource import Module, References, normalized_source, strip_docstrings
from mlbuild.rules.rule import Resources, RuleOptions

_STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}
Def = ast.stmt
MISSING = -1  # the stat signature of a path looked for and not found


class CodeResult(msgspec.Struct):
    manifest: CodeManifest
    digest: str
    sources: dict[str, str]  # source digest -> normalized source text
    files: list[str]  # workspace-relative files consulted (their content is what the digest covers)
    options: RuleOptions
    params: list[tuple[str, bool]]  # the rule's parameters and whether each has a default
    looked_up: list[str] = []  # workspace-relative paths looked for: a file appearing there changes resolution
    config_defaults: dict[str, Any] | None = None  # the rule's Config defaults, read statically


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _class_shell(node: ast.ClassDef) -> ast.ClassDef:
    """The class with each method's body dropped (its signature and decorators stay)."""
    shell = ast.ClassDef(
        name=node.name,
        bases=node.bases,
        keywords=node.keywords,
        body=[
            ast.copy_location(
                ast.FunctionDef(name=m.name, args=m.args, body=[ast.Expr(ast.Constant(...))], decorator_list=m.decorator_list, returns=m.returns, type_comment=None),
                m,
            )
            if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
            else m
            for m in node.body
        ],
        decorator_list=node.decorator_list,
    )
    return ast.copy_location(shell, node)


def _chain(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Subscript):
        return _chain(node.value)
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


class _Walk:
    """One code digest: a worklist over the definitions a rule reaches."""

    def __init__(self, hasher: CodeHasher) -> None:
        self.h = hasher
        self.entries: dict[str, FunctionEntry] = {}
        self.sources: dict[str, str] = {}
        self.third_party: set[str] = set()
        self.files: set[str] = set()
        self.attrs: set[str] = set()
        self.dynamic_attrs = False
        self.pending: dict[str, list[tuple[Module, str, ast.FunctionDef | ast.AsyncFunctionDef]]] = {}
        self.followed: set[tuple[str, tuple[str, ...]]] = set()
        self.consulted: set[str] = set()  # modules whose import-time effects are hashed
        self.todo: list[tuple[str, Module, str, Any]] = []

    # -- hashing ------------------------------------------------------------------------------

    def _entry(self, qual: str, module: Module, text: str) -> bool:
        if qual in self.entries:
            return False
        sdigest = digest_bytes(text.encode())
        self.sources[sdigest] = text
        self.entries[qual] = FunctionEntry(qual, module.file, sdigest)
        self.files.add(module.file)
        return True

    def _scan(self, module: Module, node: ast.AST) -> None:
        refs = References(module).scan(node)
        for chain in refs.chains:
            self.resolve(module, chain)
        for chain, (target, attr) in refs.local_imports:
            self.follow(target, [attr] if attr else [], chain[1:])
        new = refs.attrs - self.attrs
        self.attrs |= refs.attrs
        if refs.dynamic_module:
            self.whole_module(module)
        if refs.dynamic_attrs and not self.dynamic_attrs:
            self.dynamic_attrs = True
            new = set(self.pending)
        for name in new:
            for mod, qual, method in self.pending.pop(name, []):
                self.todo.append(("method", mod, qual, method))

    def run(self, module: Module, func: str) -> None:
        self.todo.append(("name", module, func, None))
        while self.todo:
            kind, mod, name, extra = self.todo.pop()
            if kind == "name":
                self._name(mod, name)
            elif kind == "effects":
                self._effects(mod)
            elif kind == "method":
                if self._entry(name, mod, normalized_source(extra)):
                    self._scan(mod, extra)

    def _effects(self, mod: Module) -> None:
        """What importing ``mod`` runs besides binding names: its side effects, and those of
        its parent packages and of every project module it imports (transitively)."""
        if mod.name in self.consulted:
            return
        self.consulted.add(mod.name)
        self.files.add(mod.file)
        if mod.effects and self._entry(f"{mod.name}.<module>", mod, "\n".join(normalized_source(s) for s in mod.effects)):
            for stmt in mod.effects:
                self._scan(mod, stmt)
        parts = mod.name.split(".")
        others = [".".join(parts[:i]) for i in range(1, len(parts))] + mod.imported_modules()
        for name in others:
            other = self.h.module(name)
            if other is not None:
                self.todo.append(("effects", other, "", None))
            elif name.split(".")[0] not in _STDLIB and not self.h.is_package(name):
                top = name.split(".")[0]
                if top and not self.h.is_package(top) and self.h.module(top) is None:
                    self.third_party.add(top)

    def _name(self, mod: Module, name: str) -> None:
        qual = f"{mod.name}.{name}"
        if qual in self.entries:
            return
        stmts: list[ast.stmt] = []
        for s in [*mod.bindings.get(name, []), *mod.touches.get(name, [])]:
            if all(s is not t for t in stmts):
                stmts.append(s)
        stmts.sort(key=lambda s: (s.lineno, s.col_offset))
        classes = [s for s in stmts if isinstance(s, ast.ClassDef) and s.name == name]
        text = "\n".join(normalized_source(_class_shell(s) if s in classes else s) for s in stmts)
        self._entry(qual, mod, text)
        self.todo.append(("effects", mod, "", None))
        for s in stmts:
            if s in classes:
                self._class(mod, s)
            else:
                self._scan(mod, s)

    def _class(self, mod: Module, node: ast.ClassDef) -> None:
        self._scan(mod, _class_shell(node))
        precise = self.h.precise_class(mod, node, 0)
        for m in node.body:
            if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{mod.name}.{node.name}.{m.name}"
                if not precise or _is_dunder(m.name) or m.name in self.attrs or self.dynamic_attrs:
                    self.todo.append(("method", mod, qual, m))
                else:
                    self.pending.setdefault(m.name, []).append((mod, qual, m))

    # -- resolution ---------------------------------------------------------------------------

    def resolve(self, m: Module, chain: list[str]) -> None:
        head = chain[0]
        if head in m.bindings or head in m.touches:
            self.todo.append(("name", m, head, None))
        for target, attr in m.imports.get(head, []):
            self.follow(target, [attr] if attr else [], chain[1:])
        if head not in m.bindings and head not in m.imports:
            # A star import may define it (even a builtin's name).
            for star in m.stars:
                self.follow(star, [head], chain[1:], star=True)

    def follow(self, module: str, first: list[str], rest: list[str], depth: int = 0, star: bool = False) -> None:
        """Resolve ``first + rest`` through project module ``module``. ``star``: a name looked
        up in a star-imported module, where not finding it means it is not defined there."""
        key = (module, tuple(first + rest))
        if key in self.followed or depth > 30:
            return
        self.followed.add(key)
        top = module.split(".")[0]
        if not top:
            return
        if self.h.module(module) is None and not self.h.is_package(module):
            if top not in _STDLIB:
                self.third_party.add(top)
            return
        names = first + rest
        current = module
        for i, attr in enumerate(names):
            mod = self.h.module(current)
            if mod is not None:
                self.todo.append(("effects", mod, "", None))
                if attr in mod.bindings or attr in mod.touches:
                    self.todo.append(("name", mod, attr, None))
                if attr in mod.imports:
                    for target, sub_attr in mod.imports[attr]:
                        self.follow(target, [sub_attr] if sub_attr else [], names[i + 1 :], depth + 1)
                if mod.defines(attr):
                    return
            nxt = f"{current}.{attr}"
            if self.h.module(nxt) is None and not self.h.is_package(nxt):
                if mod is not None:
                    for other in mod.stars:
                        self.follow(other, [attr], names[i + 1 :], depth + 1, star=True)
                    if mod.stars or (star and i == 0):
                        return
                break
            current = nxt
        # A project module used as a whole (a value, or an attribute it does not define).
        mod = self.h.module(current)
        if mod is not None:
            self.whole_module(mod)

    def whole_module(self, mod: Module) -> None:
        if self._entry(f"{mod.name}.*", mod, ast.unparse(strip_docstrings(ast.parse((self.h.root / mod.file).read_text())))):
            for name in [*mod.bindings, *mod.touches]:
                self.todo.append(("name", mod, name, None))
            for imports in mod.imports.values():
                for target, attr in imports:
                    self.follow(target, [attr] if attr else [], [])
            for star in mod.stars:
                self.follow(star, [], [])


class CodeHasher:
    """Computes code digests for rules of one workspace; parsed modules are shared."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._modules: dict[str, Module | None] = {}
        self._looked_up: set[str] = set()  # module names asked for during the current digest

    def module_for_file(self, rel: str) -> str:
        p = Path(rel)
        parts = list(p.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        return ".".join(parts)

    @staticmethod
    def _candidates(name: str) -> list[str]:
        rel = Path(*name.split("."))
        return [rel.with_suffix(".py").as_posix(), (rel / "__init__.py").as_posix(), rel.as_posix()]

    def module(self, name: str) -> Module | None:
        """The project module of that dotted name, or None if it is not project-local."""
        self._looked_up.add(name)
        if name in self._modules:
            return self._modules[name]
        mod = None
        for candidate in self._candidates(name)[:2]:
            path = self.root / candidate
            if name and path.is_file():
                try:
                    tree = ast.parse(path.read_text(), filename=str(path))
                except SyntaxError as exc:
                    raise UserError(f"{candidate}:{exc.lineno}: syntax error: {exc.msg}") from None
                mod = Module(name, candidate, tree)
                break
        self._modules[name] = mod
        return mod

    def is_package(self, name: str) -> bool:
        self._looked_up.add(name)
        return bool(name) and (self.root / Path(*name.split("."))).is_dir()

    def lookup_def(self, m: Module, chain: list[str], depth: int = 0) -> tuple[Module, ast.stmt] | None:
        """The project definition a dotted name in ``m`` names, statically (for base classes and
        the Config class)."""
        if depth > 20 or not chain:
            return None
        head, rest = chain[0], chain[1:]
        found = m.bindings.get(head)
        if found and not rest:
            return m, found[-1]
        for target, attr in m.imports.get(head, []):
            names = ([attr] if attr else []) + rest
            mod = self.module(target)
            while mod is not None and names:
                if mod.defines(names[0]):
                    return self.lookup_def(mod, names, depth + 1)
                sub = self.module(f"{mod.name}.{names[0]}")
                names = names[1:]
                mod = sub
        return None

    def precise_class(self, m: Module, node: ast.ClassDef, depth: int) -> bool:
        """Whether only the methods reached by name can run: no metaclass, and no base but
        ``object`` and such project classes (a framework base calls overrides by itself)."""
        if node.keywords or depth > 20:
            return False
        for base in node.bases:
            chain = _chain(base)
            if chain == ["object"]:
                continue
            found = self.lookup_def(m, chain) if chain else None
            if found is None or not isinstance(found[1], ast.ClassDef):
                return False
            if not self.precise_class(found[0], found[1], depth + 1):
                return False
        return True

    def config_defaults(self, m: Module, node: ast.FunctionDef | ast.AsyncFunctionDef, depth: int = 0) -> dict[str, Any] | None:
        """Defaults of the rule's ``config`` class, read from its source (for keying a config
        after its defaults apply: ``{"alpha": 1}`` and ``{"alpha": 1, "gamma": 0}`` are one)."""
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        ann = next((a.annotation for a in args if a.arg == "config"), None)
        chain = _chain(ann) if ann is not None else None
        found = self.lookup_def(m, chain) if chain else None
        if found is None or not isinstance(found[1], ast.ClassDef):
            return None
        return self._class_defaults(found[0], found[1], 0)

    def _class_defaults(self, m: Module, node: ast.ClassDef, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if depth > 10:
            return out
        for base in node.bases:
            chain = _chain(base)
            found = self.lookup_def(m, chain) if chain else None
            if found is not None and isinstance(found[1], ast.ClassDef):
                out.update(self._class_defaults(found[0], found[1], depth + 1))
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                value = stmt.value
                try:
                    out[stmt.target.id] = ast.literal_eval(value)
                    continue
                except ValueError:
                    pass
                chain = _chain(value.func) if isinstance(value, ast.Call) and not value.args and not value.keywords else None
                found = self.lookup_def(m, chain) if chain else None
                if found is not None and isinstance(found[1], ast.ClassDef):
                    out[stmt.target.id] = self._class_defaults(found[0], found[1], depth + 1)
                else:
                    out.pop(stmt.target.id, None)
        return out

    def digest(self, rule_file: str, func: str, label: str = "") -> CodeResult:
        self._looked_up = set()
        modname = self.module_for_file(rule_file)
        mod = self.module(modname)
        who = f"{label}: " if label else ""
        if mod is None:
            raise UserError(f"{who}rule file {rule_file} not found")
        found = mod.bindings.get(func, [])
        node = found[-1] if found else None
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise UserError(f"{who}{rule_file} defines no function {func!r}")
        options = self._rule_options(node, mod, label or f"{rule_file}:{func}")
        walk = _Walk(self)
        walk.run(mod, func)
        manifest = CodeManifest(
            rule=f"{rule_file}:{func}",
            functions=sorted(walk.entries.values(), key=lambda e: e.name),
            imports=sorted(walk.third_party),
        )
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
        params = [(a.arg, d) for a, d in zip(positional, defaults, strict=True)]
        params += [(a.arg, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        config_defaults = self.config_defaults(mod, node)
        files = set(walk.files)
        looked_up: set[str] = set()
        for name in self._looked_up:
            for candidate in self._candidates(name) if name else []:
                path = self.root / candidate
                if path.is_file():
                    files.add(candidate)
                elif not path.exists():
                    looked_up.add(candidate)  # a file or package appearing there changes resolution
        return CodeResult(
            manifest,
            digest_bytes(canonical_bytes(manifest)),
            walk.sources,
            sorted(files),
            options,
            params,
            sorted(looked_up),
            config_defaults,
        )

    def _rule_options(self, node: ast.FunctionDef | ast.AsyncFunctionDef, mod: Module, where: str) -> RuleOptions:
        for dec in node.decorator_list:
            call = dec if isinstance(dec, ast.Call) else None
            fn = call.func if call else dec
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            if name is None:
                continue
            imported = mod.imports.get(name, [])
            if name != "rule" and not any(attr == "rule" for _, attr in imported):
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
