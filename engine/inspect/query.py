"""The query language over the target graph: ``deps(E)``, ``rdeps(U, E)``, patterns.

``E`` is a pattern or another expression; results are printed one label a line, sorted.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.planner import plan, resolve_patterns
from mlbuild.engine.plan.workspace import Workspace

_TOKEN = re.compile(r"\s*(?:(?P<fn>[a-z_]+)\s*\(|(?P<close>\))|(?P<comma>,)|(?P<word>[^\s(),]+))")

def _consumers(ws: Workspace, args: list[object]) -> set[Label]:
    from mlbuild.engine.inspect.lineage import query_consumers

    return query_consumers(ws, args, transitive=False)


def _transitive_consumers(ws: Workspace, args: list[object]) -> set[Label]:
    from mlbuild.engine.inspect.lineage import query_consumers

    return query_consumers(ws, args, transitive=True)


# Functions over the recorded builds rather than the target graph; their module (lineage) is
# imported only when a query calls one.
EXTRA_FUNCTIONS: dict[str, Callable[[Workspace, list[object]], set[Label]]] = {
    "consumers": _consumers,
    "transitive_consumers": _transitive_consumers,
}


class _Parser:
    def __init__(self, ws: Workspace, text: str, current_package: str) -> None:
        self.ws = ws
        self.text = text
        self.pos = 0
        self.pkg = current_package

    def _next(self) -> re.Match[str]:
        m = _TOKEN.match(self.text, self.pos)
        if m is None or m.end() == self.pos:
            raise UserError(f"bad query {self.text!r} at position {self.pos}")
        self.pos = m.end()
        return m

    def parse(self) -> set[Label]:
        result = self._expr()
        if self.text[self.pos :].strip():
            raise UserError(f"bad query {self.text!r}: unexpected {self.text[self.pos:].strip()!r}")
        return result

    def _args(self) -> list[object]:
        args: list[object] = []
        while True:
            save = self.pos
            m = self._next()
            if m.group("close"):
                return args
            if m.group("comma"):
                continue
            self.pos = save
            if m.group("word") and m.group("word").isdigit():
                self._next()
                args.append(int(m.group("word")))
            elif m.group("word") and not m.group("word").startswith(("/", ":")) and m.group("word")[0].isalnum() and len(m.group("word")) == 32:
                self._next()
                args.append(m.group("word"))  # a digest
            else:
                args.append(self._expr())

    def _expr(self) -> set[Label]:
        m = self._next()
        if m.group("word"):
            return set(resolve_patterns(self.ws, [m.group("word")], self.pkg))
        fn = m.group("fn")
        if not fn:
            raise UserError(f"bad query {self.text!r} at position {m.start()}")
        args = self._args()
        if fn == "deps":
            return self._deps(args)
        if fn == "rdeps":
            return self._rdeps(args)
        if fn in EXTRA_FUNCTIONS:
            return EXTRA_FUNCTIONS[fn](self.ws, args)
        raise UserError(f"unknown query function {fn!r}; known: deps, rdeps{''.join(', ' + f for f in EXTRA_FUNCTIONS)}")

    def _deps(self, args: list[object]) -> set[Label]:
        if not args or not isinstance(args[0], set):
            raise UserError("deps(EXPR[, DEPTH]) needs an expression")
        the_plan = plan(self.ws, sorted(args[0]))
        if len(args) > 1 and isinstance(args[1], int):
            import networkx as nx

            g = the_plan.graph().reverse()
            out: set[Label] = set()
            for root in args[0]:
                out |= set(nx.single_source_shortest_path_length(g, root, cutoff=args[1]))
            return out
        return set(the_plan.order)

    def _rdeps(self, args: list[object]) -> set[Label]:
        if len(args) < 2 or not isinstance(args[0], set) or not isinstance(args[1], set):
            raise UserError("rdeps(UNIVERSE, EXPR) needs two expressions")
        import networkx as nx

        g = plan(self.ws, sorted(args[0])).graph()
        out = set()
        for x in args[1]:
            if x in g:
                out |= {x} | nx.descendants(g, x)
        return out & set(g.nodes)


def run_query(ws: Workspace, text: str, current_package: str = "") -> list[Label]:
    return sorted(_Parser(ws, text, current_package).parse())
