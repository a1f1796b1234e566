"""The plan-time check of a rule's return annotation: read from source (nothing imported), so
a step whose annotated return type cannot be stored fails before anything runs, not after.

``analyze_return`` resolves the names in the annotation through the module's imports (and
string annotations), and judges project classes by their source: a dataclass, NamedTuple,
Enum, TypedDict, msgspec Struct (or ``mlbuild.Config``), torch module or scikit-learn
estimator can be stored, as can a class a ``register_codec(Class, …)`` call in its module or
the rule's names; any other project class cannot. ``missing_libraries`` then says which
optional library a stored type needs but is not installed (``find_spec`` of top-level
packages only: nothing is imported). Third-party types it does not know are let through:
the encoder still checks the value itself, and names the part that failed.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

__all__ = ["analyze_return", "missing_libraries"]

# Names that are never data. typing's and collections.abc's are matched by their last part.
_NEVER = {
    "Callable": "a function is code, not data: return what it computes",
    "Iterator": "an iterator is consumed once: return a list",
    "Generator": "a generator is consumed once: return a list",
    "AsyncIterator": "an iterator is consumed once: return a list",
    "Iterable": "annotate the concrete container (list[...]) the rule returns",
    "Awaitable": "return the awaited value",
    "Coroutine": "return the awaited value",
    "IO": "return the data, or write the file into the step's `out` directory",
    "TextIO": "return the data, or write the file into the step's `out` directory",
    "BinaryIO": "return the data, or write the file into the step's `out` directory",
}
_NEVER_MODULES = ("typing", "collections.abc", "io", "types", "threading", "socket", "subprocess", "sqlite3", "logging")
_NEVER_EXACT = {
    "builtins.complex": "complex numbers have no msgpack form: return (real, imag) or a numpy array",
    "builtins.object": None,  # like Any
    "types.FunctionType": "a function is code, not data: return what it computes",
    "types.ModuleType": "a module is code, not data",
    "types.GeneratorType": "a generator is consumed once: return a list",
    "logging.Logger": "a logger is not data",
    "threading.Lock": "a lock is not data",
    "socket.socket": "a socket is not data",
    "subprocess.Popen": "a process is not data: return its output",
    "sqlite3.Connection": "a connection is not data: return the rows",
}
# Stored types that need optional libraries: dotted prefix -> (top-level packages, extra).
REQUIRES = {
    "pandas.": (("pandas", "pyarrow"), "frame"),
    "polars.": (("polars", "pyarrow"), "polars"),
    "scipy.sparse.": (("scipy",), "sparse"),
    "sklearn.": (("sklearn", "skops"), "sklearn"),
    "torch.": (("torch", "safetensors"), "ml"),
    "plotly.": (("plotly",), "plots"),
    "matplotlib.": (("matplotlib",), "plots"),
    "PIL.": (("PIL",), "plots"),
}
_STORABLE_BASES = {
    "dataclasses.dataclass", "typing.NamedTuple", "typing.TypedDict", "typing_extensions.TypedDict",
    "enum.Enum", "enum.IntEnum", "enum.StrEnum", "enum.Flag", "enum.IntFlag",
    "msgspec.Struct", "mlbuild.Config", "mlbuild.rules.config.Config",
}
_STORABLE_PREFIXES = ("torch.nn.", "sklearn.", "pandas.", "polars.", "scipy.sparse.", "plotly.", "matplotlib.", "PIL.")


class _Source:
    def __init__(self, root: Path, module: str, tree: ast.Module, text: str) -> None:
        self.root, self.module, self.tree, self.text = root, module, tree, text
        self.imports: dict[str, str] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        for node in tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imports[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(node)
                for a in node.names:
                    self.imports[a.asname or a.name] = f"{base}.{a.name}" if base else a.name
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = self.module.split(".")
        # A module's package is its name minus the last part (an __init__ is its own package).
        is_pkg = (self.root / Path(*parts) / "__init__.py").is_file()
        base = parts if is_pkg else parts[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        return ".".join([*base, *([node.module] if node.module else [])])

    def resolve(self, expr: ast.expr) -> str | None:
        """The dotted name an annotation expression refers to (``pd.DataFrame`` -> ``pandas.DataFrame``)."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.insert(0, expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        head = expr.id
        if head in self.imports:
            return ".".join([self.imports[head], *parts])
        if head in self.classes and not parts:
            return f"{self.module}.{head}"
        return ".".join(["builtins", head, *parts])


def _load(root: Path, module: str) -> _Source | None:
    parts = module.split(".")
    for cand in (root / Path(*parts).with_suffix(".py"), root / Path(*parts) / "__init__.py"):
        if cand.is_file():
            try:
                text = cand.read_text()
                return _Source(root, module, ast.parse(text), text)
            except (SyntaxError, UnicodeDecodeError, OSError):
                return None
    return None


def _class_problem(root: Path, dotted: str, rule_src: _Source, seen: set[str]) -> tuple[bool, str | None]:
    """(is a project class, why it cannot be stored or None)."""
    module, _, name = dotted.rpartition(".")
    src = rule_src if module == rule_src.module else _load(root, module)
    if src is None or name not in src.classes or dotted in seen:
        return False, None
    seen.add(dotted)
    node = src.classes[name]
    decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
    for d in decorators:
        if src.resolve(d) in {"dataclasses.dataclass", "builtins.dataclass"} or (isinstance(d, ast.Name) and d.id == "dataclass"):
            return True, None
    for base in node.bases:
        b = src.resolve(base.value if isinstance(base, ast.Subscript) else base)
        if b is None:
            continue
        if b in _STORABLE_BASES or b.startswith(_STORABLE_PREFIXES) or b.endswith((".Struct", ".NamedTuple", ".TypedDict")):
            return True, None
        if b.startswith("enum."):
            return True, None
        is_project, problem = _class_problem(root, b, rule_src, seen)
        if is_project and problem is None:
            return True, None
    for text in {src.text, rule_src.text}:
        if f"register_codec({name}" in text:
            return True, None
    where = src.module.replace(".", "/") + ".py"
    return True, (
        f"{name} ({where}) is a plain class, which mlbuild cannot store: make it a @dataclass or a "
        "msgspec.Struct of storable fields, or register a codec for it with mlbuild.register_codec"
    )


def _names(ann: ast.expr) -> list[ast.expr]:
    """The type references of an annotation, skipping Literal[...] / Annotated metadata."""
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            return _names(ast.parse(ann.value, mode="eval").body)
        except SyntaxError:
            return []
    if isinstance(ann, ast.Subscript):
        head = ann.value
        tail = head.attr if isinstance(head, ast.Attribute) else head.id if isinstance(head, ast.Name) else ""
        if tail == "Literal":
            return []
        items = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        if tail == "Annotated":
            items = items[:1]
        return [head, *(n for i in items for n in _names(i))]
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
        return [*_names(ann.left), *_names(ann.right)]
    if isinstance(ann, (ast.Tuple, ast.List)):
        return [n for e in ann.elts for n in _names(e)]
    if isinstance(ann, (ast.Name, ast.Attribute)):
        return [ann]
    return []


def analyze_return(root: Path, rule_file: str, func: str) -> tuple[list[str], str | None]:
    """(the dotted names of the types ``func``'s return annotation mentions, the first reason
    one of them cannot be stored, or None). No annotation: nothing to check."""
    parts = list(Path(rule_file).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    src = _load(root, ".".join(parts))
    if src is None:
        return [], None
    node = next((n for n in src.tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == func), None)
    if node is None or node.returns is None:
        return [], None
    names: list[str] = []
    for ref in _names(node.returns):
        dotted = src.resolve(ref)
        if dotted is None:
            continue
        names.append(dotted)
        short = dotted.rsplit(".", 1)[-1]
        module = dotted.rpartition(".")[0]
        if dotted in _NEVER_EXACT:
            why = _NEVER_EXACT[dotted]
            if why:
                return names, f"returns {ast.unparse(node.returns)}: {short}: {why}"
            continue
        if short in _NEVER and (module in _NEVER_MODULES or module == "builtins"):
            if module == "builtins" and short not in src.imports:
                continue  # an unresolved bare name; nothing to judge
            return names, f"returns {ast.unparse(node.returns)}: {short}: {_NEVER[short]}"
        is_project, problem = _class_problem(root, dotted, src, set())
        if is_project and problem:
            return names, f"returns {ast.unparse(node.returns)}: {problem}"
    return names, None


def missing_libraries(names: list[str]) -> str | None:
    """Which optional library a returned type needs but is not installed (or None)."""
    return _missing(tuple(names)) if names else None


@functools.lru_cache(maxsize=256)
def _missing(names: tuple[str, ...]) -> str | None:
    for dotted in names:
        for prefix, (packages, extra) in REQUIRES.items():
            if dotted.startswith(prefix):
                missing = [p for p in packages if importlib.util.find_spec(p) is None]
                if missing:
                    return (
                        f"returns {dotted}, which needs {', '.join(missing)} to be stored: "
                        f"pip install 'mlbuild[{extra}]'"
                    )
    return None
