"""Reading Python source for static code digests: a module's top-level bindings, the statements
that mutate them, its import-time side effects, and the names a definition refers to (with
Python's scoping: locals are not module references, function-local imports are followed).

Nothing here imports the code it reads.
"""

from __future__ import annotations

import ast

# Decorators that run no user code at import (everything else may register the definition
# somewhere, so a decorated definition counts as an import-time side effect of its module).
PURE_DECORATORS = frozenset(
    {
        "rule", "property", "staticmethod", "classmethod", "cached_property", "abstractmethod",
        "dataclass", "wraps", "lru_cache", "cache", "total_ordering", "overload", "final",
        "no_grad", "inference_mode", "jit", "njit", "contextmanager", "setter", "getter", "deleter",
        "singledispatch", "override", "runtime_checkable",
    }
)  # fmt: skip
DYNAMIC_NAMES = frozenset({"globals", "vars", "eval", "exec", "locals"})
Import = tuple[str, str | None]  # (absolute module, attribute or None)


def strip_docstrings(node: ast.AST) -> ast.AST:
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                n.body = body[1:] or [ast.Pass()]
    return node


def normalized_source(node: ast.AST) -> str:
    """Source with comments, docstrings and formatting normalized away.

    Docstrings are taken out for the unparse and put back (no deep copy: planning a cold
    workspace normalizes every reached definition)."""
    saved: list[tuple[ast.AST, list[ast.stmt]]] = []
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                saved.append((n, body))
                n.body = body[1:] or [ast.Pass()]
    try:
        return ast.unparse(node)
    finally:
        for n, body in saved:
            n.body = body  # type: ignore[attr-defined]


def normalized_text(data: bytes) -> str | None:
    """A whole file's normalized source, or None when it does not parse."""
    try:
        return ast.unparse(strip_docstrings(ast.parse(data)))
    except (SyntaxError, ValueError):
        return None


def decorator_name(dec: ast.expr) -> str | None:
    fn = dec.func if isinstance(dec, ast.Call) else dec
    if isinstance(fn, ast.Attribute):
        return fn.attr
    return fn.id if isinstance(fn, ast.Name) else None


def _base_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _target_names(target: ast.expr) -> list[str]:
    """Names a target binds (``a``, ``a, (b, *c)``); attribute and subscript targets bind none."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _target_names(t)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def absolute_module(module: str, level: int, modname: str, is_package: bool) -> str:
    if level == 0:
        return module
    parts = modname.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


class Module:
    """One parsed project module: what each top-level name is bound by and mutated by, and what
    runs at import for its side effects."""

    def __init__(self, name: str, file: str, tree: ast.Module) -> None:
        self.name = name
        self.file = file
        self.tree = tree
        self.is_package = file.endswith("__init__.py")
        self.bindings: dict[str, list[ast.stmt]] = {}  # name -> statements binding it, in order
        self.touches: dict[str, list[ast.stmt]] = {}  # name -> other statements that mutate or use it
        self.imports: dict[str, list[Import]] = {}
        self.stars: list[str] = []  # modules star-imported
        self.effects: list[ast.stmt] = []  # import-time side effects (calls, registrations, mutations)
        self._import_stmts: list[ast.Import | ast.ImportFrom] = []
        self._collect(tree.body, None)

    def absolute(self, module: str, level: int) -> str:
        return absolute_module(module, level, self.name, self.is_package)

    def defines(self, name: str) -> bool:
        return name in self.bindings or name in self.imports

    def _bind(self, name: str, stmt: ast.stmt) -> None:
        found = self.bindings.setdefault(name, [])
        if not found or found[-1] is not stmt:
            found.append(stmt)

    def _touch(self, name: str, stmt: ast.stmt) -> None:
        found = self.touches.setdefault(name, [])
        if not found or found[-1] is not stmt:
            found.append(stmt)

    def _collect(self, body: list[ast.stmt], block: ast.stmt | None) -> None:
        """``block`` is the top-level compound statement (if/try/with/for) enclosing ``body``:
        a name bound inside one is bound by the whole block (its condition, both branches)."""
        for node in body:
            unit = block or node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._bind(node.name, unit)
                if any(decorator_name(d) not in PURE_DECORATORS for d in node.decorator_list):
                    self._effect(unit)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names = _target_names(t)
                    for n in names:
                        self._bind(n, unit)
                    if not names:
                        # ``TABLE["b"] = 2``, ``torch.backends.cudnn.benchmark = True``: a
                        # mutation of what the base name holds, never a new definition.
                        base = _base_name(t)
                        if base is not None:
                            self._touch(base, unit)
                            self._effect(unit)
                if node.value is not None:
                    self._touch_names(node.value, unit)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports.setdefault(alias.asname, []).append((alias.name, None))
                    else:
                        top = alias.name.split(".")[0]
                        self.imports.setdefault(top, []).append((top, None))
                        if "." in alias.name:  # ``import a.b`` also makes ``a.b`` reachable from ``a``
                            self.imports[top].append((alias.name, None))
                self._import_stmts.append(node)
            elif isinstance(node, ast.ImportFrom):
                base = self.absolute(node.module or "", node.level)
                for alias in node.names:
                    if alias.name == "*":
                        self.stars.append(base)
                    else:
                        self.imports.setdefault(alias.asname or alias.name, []).append((base, alias.name))
                self._import_stmts.append(node)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While, ast.TryStar)):
                for field in ("body", "orelse", "finalbody"):
                    self._collect(getattr(node, field, []), unit)
                for handler in getattr(node, "handlers", []):
                    if handler.name:
                        self._bind(handler.name, unit)
                    self._collect(handler.body, unit)
                if isinstance(node, (ast.For, ast.AsyncFor)):
                    for n in _target_names(node.target):
                        self._bind(n, unit)
                if isinstance(node, (ast.With, ast.AsyncWith)):
                    for item in node.items:
                        if item.optional_vars is not None:
                            for n in _target_names(item.optional_vars):
                                self._bind(n, unit)
                if block is None:
                    self._touch_names(node, unit)
            elif isinstance(node, (ast.Expr, ast.Delete, ast.Assert, ast.Raise, ast.Match)):
                # ``LIST.append(3)``, ``random.seed(1234)``, ``register(Model)``, ``del X``.
                self._touch_names(node, unit)
                self._effect(unit)
            elif isinstance(node, ast.Global | ast.Nonlocal | ast.Pass):
                continue
            else:
                self._touch_names(node, unit)
                self._effect(unit)

    def _effect(self, unit: ast.stmt) -> None:
        if not self.effects or self.effects[-1] is not unit:
            self.effects.append(unit)

    def imported_modules(self) -> list[str]:
        """Every module its import statements name (absolute), at any depth of the top level:
        importing this module runs theirs."""
        out: list[str] = []
        for node in self._import_stmts:
            if isinstance(node, ast.Import):
                out.extend(alias.name for alias in node.names)
            else:
                base = self.absolute(node.module or "", node.level)
                out.append(base)
                out.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        return out

    def _touch_names(self, node: ast.AST, unit: ast.stmt) -> None:
        for n in ast.walk(node):
            if isinstance(n, ast.Name):
                self._touch(n.id, unit)


# ---------------------------------------------------------------------------------------------
# References: what a definition's code refers to, with Python's scopes.

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bound_in(scope: ast.AST) -> tuple[set[str], set[str]]:
    """(names bound in this function scope, names it declares ``global``); nested scopes excluded."""
    bound: set[str] = set()
    declared_global: set[str] = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = scope.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
            if arg is not None:
                bound.add(arg.arg)
        body: list[ast.AST] = list(scope.body) if isinstance(scope.body, list) else [scope.body]
    else:  # a comprehension: its targets; the first iterable belongs to the enclosing scope
        gens = scope.generators  # type: ignore[attr-defined]
        for g in gens:
            bound.update(_target_names(g.target))
        body = [g for g in gens] + [getattr(scope, f) for f in ("elt", "key", "value") if hasattr(scope, f)]
    todo = list(body)
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Global):
            declared_global.update(n.names)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
            todo.extend(n.decorator_list)
            if isinstance(n, ast.ClassDef):
                todo.extend(n.bases)
            continue  # its body is another scope
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for alias in n.names:
                if alias.name != "*":
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            bound.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            bound.add(n.rest)
        if isinstance(n, _SCOPES) and n is not scope:
            if isinstance(n, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                todo.append(n.generators[0].iter)
            elif isinstance(n, ast.Lambda):
                todo.extend(n.args.defaults + [d for d in n.args.kw_defaults if d is not None])
            continue
        todo.extend(ast.iter_child_nodes(n))
    return bound - declared_global, declared_global


class References(ast.NodeVisitor):
    """Free references (dotted chains) of a definition, the imports made inside its functions,
    every attribute name it uses, and whether it reaches names dynamically."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.chains: list[list[str]] = []
        self.local_imports: list[tuple[list[str], Import]] = []  # (chain used, import it names)
        self.attrs: set[str] = set()
        self.dynamic_attrs = False  # getattr(x, <not a literal>)
        self.dynamic_module = False  # globals(), vars(), eval, exec
        self._scopes: list[tuple[set[str], dict[str, list[Import]]]] = []

    def scan(self, node: ast.AST) -> References:
        self.visit(node)
        return self

    def _enter(self, scope: ast.AST) -> None:
        bound, _ = _bound_in(scope)
        imports: dict[str, list[Import]] = {}
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            n = todo.pop()
            if isinstance(n, _SCOPES) or isinstance(n, ast.ClassDef):
                continue
            if isinstance(n, ast.Import):
                for alias in n.names:
                    local = alias.asname or alias.name.split(".")[0]
                    imports.setdefault(local, []).append((alias.name if alias.asname else local, None))
                    if not alias.asname and "." in alias.name:
                        imports[local].append((alias.name, None))
            elif isinstance(n, ast.ImportFrom):
                base = self.module.absolute(n.module or "", n.level)
                for alias in n.names:
                    if alias.name != "*":
                        imports.setdefault(alias.asname or alias.name, []).append((base, alias.name))
            todo.extend(ast.iter_child_nodes(n))
        self._scopes.append((bound, imports))

    def _visit_scope(self, node: ast.AST) -> None:
        self._enter(node)
        self.generic_visit(node)
        self._scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for d in [*node.args.defaults, *[k for k in node.args.kw_defaults if k is not None]]:
            self.visit(d)
        for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]:
            if a is not None and a.annotation is not None:
                self.visit(a.annotation)
        if node.returns is not None:
            self.visit(node.returns)
        self._enter(node)
        for stmt in node.body:
            self.visit(stmt)
        self._scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for d in [*node.args.defaults, *[k for k in node.args.kw_defaults if k is not None]]:
            self.visit(d)
        self._enter(node)
        self.visit(node.body)
        self._scopes.pop()

    def _visit_comp(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> None:
        self.visit(node.generators[0].iter)
        self._enter(node)
        for i, g in enumerate(node.generators):
            if i:
                self.visit(g.iter)
            for cond in g.ifs:
                self.visit(cond)
        for f in ("elt", "key", "value"):
            if hasattr(node, f):
                self.visit(getattr(node, f))
        self._scopes.pop()

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comp

    def _reference(self, chain: list[str]) -> None:
        head = chain[0]
        for bound, imports in reversed(self._scopes):
            if head in imports:
                for imp in imports[head]:
                    self.local_imports.append((chain, imp))
                return
            if head in bound:
                return  # a local (or closure) variable, not the module-level name it may shadow
        if head in DYNAMIC_NAMES:
            self.dynamic_module = True
        self.chains.append(chain)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._reference([node.id])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            chain.append(cur.attr)
            self.attrs.add(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name):
            self._reference([cur.id, *reversed(chain)])
        else:
            self.visit(cur)

    def visit_Call(self, node: ast.Call) -> None:
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
        if name in ("getattr", "hasattr", "setattr", "methodcaller", "attrgetter") and node.args:
            literal = node.args[1] if name in ("getattr", "hasattr", "setattr") and len(node.args) > 1 else node.args[0]
            if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                self.attrs.add(literal.value)
            else:
                self.dynamic_attrs = True
        self.generic_visit(node)
