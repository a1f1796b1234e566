"""The key mutation suite: each code shape, built, then one mutation alone; the exact set of
steps that run again is asserted, and every served result (rebuilt or not) is compared with a
fresh build's, so a stale hit cannot pass. Builds run in this process (tests/support/keys_ws.py).

Accepted false rebuilds (each asserted below, so a change in them is seen):
- the fallback branch of ``try: from .fast import f / except ImportError: ...`` counts even
  when the fast one is there (both branches are what the code may run);
- a class whose base is not a project class keeps every method (a framework may call any
  override: ``forward``);
- an unused module-level name in a ``try``/``if`` block counts when another name of the block is
  used (the block is one unit: its condition decides both).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.keys_ws import Built, SysPath, build, fake_dist
from support.workspace import write_files as write

BASE: dict[str, str] = {
    "mlbuild.toml": '[workspace]\nname = "m"\n',
    "lib/__init__.py": "",
    "lib/utils.py": "K = 3\n\n\ndef f(x):\n    return x + K\n\n\ndef g(x):\n    return x - 1\n",
    "pipe/BUILD.py": textwrap.dedent(
        """\
        from mlbuild import target, File
        target(name="a", rule="rules.py:a", config={"i": 1})
        target(name="b", rule="rules.py:b", inputs={"x": ":a"})
        target(name="c", rule="other.py:c")
        """
    ),
    "pipe/rules.py": textwrap.dedent(
        """\
        from mlbuild import rule
        from lib.utils import f


        @rule
        def a(config: dict) -> int:
            return f(config["i"])


        @rule
        def b(x: int) -> int:
            return x * 10
        """
    ),
    "pipe/other.py": "from mlbuild import rule\nfrom lib.utils import g\n\n\n@rule\ndef c() -> int:\n    return g(100)\n",
}


def rules(body: str, head: str = "", config: str = "dict") -> dict[str, str]:
    """``pipe/rules.py`` with rule ``a`` replaced: ``head`` at module level, ``body`` its body."""
    return {
        "pipe/rules.py": "from mlbuild import rule\n"
        + textwrap.dedent(head)
        + f"\n\n@rule\ndef a(config: {config}) -> int:\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\n\n@rule\ndef b(x: int) -> int:\n    return x * 10\n"
    }


def sub(path: str, old: str, new: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        text = (root / path).read_text()
        assert old in text, f"{old!r} not in {path}"
        (root / path).write_text(text.replace(old, new))

    return change


@dataclasses.dataclass
class Case:
    id: str
    files: dict[str, str]
    change: Callable[[Path], None] | dict[str, str | None]
    expect: set[str]  # target names under //pipe that must run again
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)  # set before the change


AB = {"a", "b"}
A = {"a"}
NONE: set[str] = set()

HELPERS = {"lib/helpers.py": "def f(x):\n    return x * 2\n\n\ndef unused():\n    return 1\n"}
ZOO = {
    "lib/zoo.py": textwrap.dedent(
        """\
        MODELS = {}


        def register(name):
            def deco(cls):
                MODELS[name] = cls
                return cls
            return deco


        @register("small")
        class Small:
            def size(self):
                return 1


        @register("big")
        class Big:
            def size(self):
                return 100
        """
    )
}
MODELS_PKG = {
    "lib/models/__init__.py": "",
    "lib/models/small.py": "def size():\n    return 1\n",
    "lib/models/big.py": "def size():\n    return 100\n",
}
CLASSES = {
    "lib/net.py": textwrap.dedent(
        """\
        class Base:
            def run(self, x):
                return self.step(x)

            def step(self, x):
                return x


        class Net(Base):
            def __init__(self, k):
                self.k = k

            def step(self, x):
                return x * self.k

            def unused(self):
                return 0

            @property
            def twice(self):
                return self.k * 2
        """
    )
}

CASES: list[Case] = [
    # -- imports inside functions ------------------------------------------------------------
    Case("local-import-edit", {**HELPERS, **rules("from lib.helpers import f\nreturn f(config['i'])")}, sub("lib/helpers.py", "x * 2", "x * 3"), AB),
    Case("local-import-unused-edit", {**HELPERS, **rules("from lib.helpers import f\nreturn f(config['i'])")}, sub("lib/helpers.py", "return 1", "return 2"), NONE),
    Case("local-import-comment", {**HELPERS, **rules("from lib.helpers import f\nreturn f(config['i'])")}, sub("lib/helpers.py", "def f(x):", "# hi\ndef f(x):"), NONE),
    Case("local-relative-import", {**HELPERS, "pipe/__init__.py": "", "pipe/help2.py": "def h():\n    return 5\n", **rules("from .help2 import h\nreturn h()")}, sub("pipe/help2.py", "5", "6"), AB),
    Case("local-import-as-module", {**HELPERS, **rules("import lib.helpers as hh\nreturn hh.f(2)")}, sub("lib/helpers.py", "x * 2", "x * 4"), AB),
    Case("local-import-module-unused-fn", {**HELPERS, **rules("import lib.helpers as hh\nreturn hh.f(2)")}, sub("lib/helpers.py", "return 1", "return 7"), NONE),
    # -- registries and dynamic dispatch -----------------------------------------------------
    Case("registry-decorator-edit", {**ZOO, **rules("from lib.zoo import MODELS\nreturn MODELS['small']().size()")}, sub("lib/zoo.py", "return 1", "return 2"), AB),
    Case("registry-other-entry-edit", {**ZOO, **rules("from lib.zoo import MODELS\nreturn MODELS['small']().size()")}, sub("lib/zoo.py", "return 100", "return 200"), A),
    Case("importlib-dynamic-edit", {**MODELS_PKG, **rules("import importlib\nreturn importlib.import_module('lib.models.' + 'small').size()")}, sub("lib/models/small.py", "1", "2"), AB),
    Case("importlib-dynamic-sibling", {**MODELS_PKG, **rules("import importlib\nreturn importlib.import_module('lib.models.' + 'small').size()")}, sub("lib/models/big.py", "100", "101"), NONE),
    Case("dunder-import-dynamic", {**MODELS_PKG, **rules("m = __import__('lib.models.small', fromlist=['size'])\nreturn m.size()")}, sub("lib/models/small.py", "1", "3"), AB),
    Case("registry-by-import-side-effect", {
        "lib/reg.py": "TABLE = {}\n",
        "lib/plugins.py": "from lib.reg import TABLE\nTABLE['p'] = 4\n",
        **rules("import lib.plugins\nfrom lib.reg import TABLE\nreturn TABLE['p']"),
    }, sub("lib/plugins.py", "4", "5"), AB),
    # -- module-level attribute assignment, mutation, side effects ---------------------------
    Case("attr-assign-on-project-module", {
        "lib/knobs.py": "VERBOSE = True\n\n\ndef describe():\n    return 7\n",
        **rules("return knobs.describe()", "import lib.knobs as knobs\nknobs.VERBOSE = False\n"),
    }, sub("lib/knobs.py", "return 7", "return 8"), AB),
    Case("attr-assign-value-edit", {
        "lib/knobs.py": "VERBOSE = True\n\n\ndef describe():\n    return 7 if VERBOSE else 9\n",
        **rules("return knobs.describe()", "import lib.knobs as knobs\nknobs.VERBOSE = False\n"),
    }, sub("pipe/rules.py", "knobs.VERBOSE = False", "knobs.VERBOSE = True"), AB),
    Case("state-mutated-by-other-module", {
        "lib/settings.py": "SCALE = 2\n",
        "lib/setup.py": "import lib.settings\nlib.settings.SCALE = 3\n",
        **rules("import lib.setup\nimport lib.settings\nreturn lib.settings.SCALE"),
    }, sub("lib/setup.py", "= 3", "= 4"), AB),
    Case("dict-item-assign", rules("return TABLE['b']", "TABLE = {'a': 1}\nTABLE['b'] = 2\n"), sub("pipe/rules.py", "TABLE['b'] = 2", "TABLE['b'] = 3"), AB),
    Case("list-append", rules("return sum(LIST)", "LIST = [1]\nLIST.append(3)\n"), sub("pipe/rules.py", "append(3)", "append(4)"), AB),
    Case("aug-assign", rules("return N", "N = 1\nN += 1\n"), sub("pipe/rules.py", "N += 1", "N += 2"), AB),
    Case("rebinding", rules("return M", "M = 2\nM = M * 5\n"), sub("pipe/rules.py", "M * 5", "M * 6"), AB),
    Case("random-seed-side-effect", rules("return int(random.random() * 1000)", "import random\nrandom.seed(1234)\n"), sub("pipe/rules.py", "1234", "4321"), AB),
    Case("seed-in-helper-module", {
        "lib/seeded.py": "import random\nrandom.seed(5)\n\n\ndef draw():\n    return int(random.random() * 1000)\n",
        **rules("from lib.seeded import draw\nreturn draw()"),
    }, sub("lib/seeded.py", "seed(5)", "seed(6)"), AB),
    Case("unrelated-module-constant", rules("return 1", "UNUSED = 5\n"), sub("pipe/rules.py", "UNUSED = 5", "UNUSED = 6"), NONE),
    # -- star imports and try/except imports -------------------------------------------------
    Case("star-import-used", {"lib/m.py": "def f2(x):\n    return x + 1\n\n\ndef g2():\n    return 0\n", **rules("return f2(1)", "from lib.m import *\n")}, sub("lib/m.py", "x + 1", "x + 2"), AB),
    Case("star-import-unused", {"lib/m.py": "def f2(x):\n    return x + 1\n\n\ndef g2():\n    return 0\n", **rules("return f2(1)", "from lib.m import *\n")}, sub("lib/m.py", "return 0", "return 5"), NONE),
    Case("star-import-shadows-builtin", {"lib/m.py": "def f2(x):\n    return x + 1\n", **rules("return len([1, 2])", "from lib.m import *\n")}, sub("lib/m.py", "def f2", "def len(x):\n    return 99\n\n\ndef f2"), AB),
    Case("try-import-fast-edit", {
        "lib/fast.py": "def h():\n    return 1\n",
        **rules("return h()", "try:\n    from lib.fast import h\nexcept ImportError:\n    def h():\n        return 0\n"),
    }, sub("lib/fast.py", "1", "2"), AB),
    Case("try-import-fallback-edit", {
        "lib/fast.py": "def h():\n    return 1\n",
        **rules("return h()", "try:\n    from lib.fast import h\nexcept ImportError:\n    def h():\n        return 0\n"),
    }, sub("pipe/rules.py", "return 0", "return 5"), A),  # accepted false rebuild (see top)
    Case("try-import-fast-appears", rules("return h()", "try:\n    from lib.fast import h\nexcept ImportError:\n    def h():\n        return 0\n"), {"lib/fast.py": "def h():\n    return 1\n"}, AB),
    Case("facade-switch", {
        "lib/impl_a.py": "def f3():\n    return 1\n",
        "lib/impl_b.py": "def f3():\n    return 2\n",
        "lib/facade.py": "from lib.impl_a import f3\n",
        **rules("from lib.facade import f3\nreturn f3()"),
    }, sub("lib/facade.py", "impl_a", "impl_b"), AB),
    Case("facade-toplevel-switch", {
        "lib/impl_a.py": "def f3():\n    return 1\n",
        "lib/impl_b.py": "def f3():\n    return 2\n",
        "lib/facade.py": "from lib.impl_a import f3\n",
        **rules("return f3()", "from lib.facade import f3\n"),
    }, sub("lib/facade.py", "impl_a", "impl_b"), AB),
    Case("module-if-else-binding", rules("return h()", "import os\nif os.environ.get('NEVER_SET_X'):\n    def h():\n        return 1\nelse:\n    def h():\n        return 2\n"), sub("pipe/rules.py", "return 2", "return 3"), AB),
    # -- precision: what must NOT rebuild ----------------------------------------------------
    Case("m-dot-f-unused-function", rules("return u.f(1)", "import lib.utils as u\n"), sub("lib/utils.py", "x - 1", "x - 2"), {"c"}),
    Case("m-dot-f-used-function", rules("return u.f(1)", "import lib.utils as u\n"), sub("lib/utils.py", "x + K", "x + K + 1"), AB),
    Case("m-dot-f-constant-read", rules("return u.f(1)", "import lib.utils as u\n"), sub("lib/utils.py", "K = 3", "K = 4"), AB),
    Case("helper-only-c-uses", {}, sub("lib/utils.py", "x - 1", "x - 2"), {"c"}),
    Case("method-unused", {**CLASSES, **rules("from lib.net import Net\nreturn Net(3).run(2)")}, sub("lib/net.py", "return 0", "return 1"), NONE),
    Case("method-used-via-base", {**CLASSES, **rules("from lib.net import Net\nreturn Net(3).run(2)")}, sub("lib/net.py", "x * self.k", "x * self.k + 1"), AB),
    Case("method-dunder-init", {**CLASSES, **rules("from lib.net import Net\nreturn Net(3).run(2)")}, sub("lib/net.py", "self.k = k", "self.k = k + 1"), AB),
    Case("method-property", {**CLASSES, **rules("from lib.net import Net\nreturn Net(3).twice")}, sub("lib/net.py", "self.k * 2", "self.k * 3"), AB),
    Case("method-getattr-dynamic", {**CLASSES, **rules("from lib.net import Net\nname = 'un' + 'used'\nreturn getattr(Net(3), name)()")}, sub("lib/net.py", "return 0", "return 4"), AB),
    Case("method-non-project-base", {
        "lib/dnet.py": "class D(dict):\n    def keys2(self):\n        return 1\n\n    def unused(self):\n        return 0\n",
        **rules("from lib.dnet import D\nreturn D().keys2()"),
    }, sub("lib/dnet.py", "return 0", "return 2"), A),  # accepted false rebuild (see top)
    Case("local-shadows-global", rules("data = config['i']\nreturn data", "data = 5\n"), sub("pipe/rules.py", "data = 5", "data = 6"), NONE),
    Case("nested-function-uses-global", rules("def inner():\n    return data\nx = inner\nreturn x()", "data = 5\n"), sub("pipe/rules.py", "data = 5", "data = 6"), AB),
    Case("global-declared", rules("global COUNTER\nCOUNTER = COUNTER + 1\nreturn COUNTER", "COUNTER = 10\n"), sub("pipe/rules.py", "COUNTER = 10", "COUNTER = 20"), AB),
    Case("lambda-closure-constant", rules("fn = lambda: LIMIT\nreturn fn()", "LIMIT = 3\n"), sub("pipe/rules.py", "LIMIT = 3", "LIMIT = 4"), AB),
    Case("comprehension-constant", rules("return sum(x * W for x in range(3))", "W = 2\n"), sub("pipe/rules.py", "W = 2", "W = 5"), AB),
    Case("comprehension-var-shadows", rules("return sum(W for W in range(3))", "W = 2\n"), sub("pipe/rules.py", "W = 2", "W = 5"), NONE),
    Case("default-arg-constant", rules("return helper()", "K2 = 3\n\n\ndef helper(k=K2):\n    return k\n"), sub("pipe/rules.py", "K2 = 3", "K2 = 4"), AB),
    Case("project-decorator-edit", rules("return helper()", "def deco(fn):\n    return lambda: fn() + 1\n\n\n@deco\ndef helper():\n    return 1\n"), sub("pipe/rules.py", "fn() + 1", "fn() + 2"), AB),
    Case("comment-docstring-format", {}, sub("pipe/rules.py", "def a(config: dict) -> int:\n", 'def a(config: dict) -> int:\n    """Doc."""\n    # a comment\n'), NONE),
    Case("reformat-helper-file", {}, sub("lib/utils.py", "return x + K", "return (\n        x\n        + K\n    )"), NONE),
    Case("globals-dynamic-lookup", rules("return globals()['hidden']()", "def hidden():\n    return 1\n"), sub("pipe/rules.py", "return 1", "return 2"), AB),
    Case("upstream-same-output", {}, sub("lib/utils.py", "return x + K", "return K + x"), A),
    Case("upstream-new-output", {}, sub("lib/utils.py", "K = 3", "K = 30"), AB),
    Case("build-file-other-target", {}, sub("pipe/BUILD.py", 'rule="other.py:c")', 'rule="other.py:c", config={"z": 1})'), {"c"}),
    # -- configs ---------------------------------------------------------------------------
    Case("config-explicit-default", {
        "pipe/cfg.py": "from mlbuild import Config\n\n\nclass Cfg(Config):\n    alpha: int = 1\n    gamma: int = 0\n",
        **rules("return config.alpha + config.gamma", "from pipe.cfg import Cfg\n", "Cfg"),
        "pipe/BUILD.py": BASE["pipe/BUILD.py"].replace('config={"i": 1}', 'config={"alpha": 1}'),
    }, sub("pipe/BUILD.py", 'config={"alpha": 1}', 'config={"alpha": 1, "gamma": 0}'), NONE),
    Case("config-changed-field", {
        "pipe/cfg.py": "from mlbuild import Config\n\n\nclass Cfg(Config):\n    alpha: int = 1\n    gamma: int = 0\n",
        **rules("return config.alpha + config.gamma", "from pipe.cfg import Cfg\n", "Cfg"),
        "pipe/BUILD.py": BASE["pipe/BUILD.py"].replace('config={"i": 1}', 'config={"alpha": 1}'),
    }, sub("pipe/BUILD.py", 'config={"alpha": 1}', 'config={"alpha": 1, "gamma": 5}'), AB),
    Case("config-nested-default", {
        "pipe/cfg.py": "from mlbuild import Config\n\n\nclass Opt(Config):\n    lr: float = 0.5\n\n\nclass Cfg(Config):\n    alpha: int = 1\n    opt: Opt = Opt()\n",
        **rules("return config.alpha", "from pipe.cfg import Cfg\n", "Cfg"),
        "pipe/BUILD.py": BASE["pipe/BUILD.py"].replace('config={"i": 1}', 'config={}'),
    }, sub("pipe/BUILD.py", 'config={}', 'config={"opt": {"lr": 0.5}}'), NONE),
    Case("config-default-changed-in-class", {
        "pipe/cfg.py": "from mlbuild import Config\n\n\nclass Cfg(Config):\n    alpha: int = 1\n    gamma: int = 0\n",
        **rules("return config.alpha + config.gamma", "from pipe.cfg import Cfg\n", "Cfg"),
        "pipe/BUILD.py": BASE["pipe/BUILD.py"].replace('config={"i": 1}', 'config={"alpha": 1}'),
    }, sub("pipe/cfg.py", "gamma: int = 0", "gamma: int = 2"), AB),
    # -- environment variables ---------------------------------------------------------------
    Case("env-getitem", rules("return len(os.environ['KNOB_T'])", "import os\n"), lambda root: os.environ.__setitem__("KNOB_T", "longer"), AB, env={"KNOB_T": "on"}),
    Case("env-get-unset-to-set", rules("return 1 if os.environ.get('KNOB_T') else 0", "import os\n"), lambda root: os.environ.__setitem__("KNOB_T", "on"), AB, env={"KNOB_T": None}),
    Case("env-getenv", rules("return len(os.getenv('KNOB_T', ''))", "import os\n"), lambda root: os.environ.__setitem__("KNOB_T", "abc"), AB, env={"KNOB_T": None}),
    Case("env-contains", rules("return 1 if 'KNOB_T' in os.environ else 0", "import os\n"), lambda root: os.environ.__setitem__("KNOB_T", "x"), AB, env={"KNOB_T": None}),
    Case("env-in-helper-module", {"lib/envy.py": "import os\n\n\ndef knob():\n    return os.environ.get('KNOB_T', 'off')\n", **rules("from lib.envy import knob\nreturn len(knob())")}, lambda root: os.environ.__setitem__("KNOB_T", "onnnn"), AB, env={"KNOB_T": None}),
    Case("env-unrelated-variable", rules("return len(os.environ.get('KNOB_T', ''))", "import os\n"), lambda root: os.environ.__setitem__("OTHER_T", "x"), NONE, env={"KNOB_T": None, "OTHER_T": None}),
    # -- files the step opens ----------------------------------------------------------------
    Case("undeclared-file-read", {"data/extra.txt": "abc", **rules("from pathlib import Path\nreturn len(Path('data/extra.txt').read_text())")}, {"data/extra.txt": "abcd"}, AB),
    Case("undeclared-file-appears", rules("try:\n    with open('data/late.txt') as f:\n        return len(f.read())\nexcept FileNotFoundError:\n    return -1"), {"data/late.txt": "xy"}, AB),
    Case("undeclared-folder-listing", {"data/d/1.txt": "1", **rules("import os\nreturn len(os.listdir('data/d'))")}, {"data/d/2.txt": "2"}, AB),
    Case("declared-file-input", {
        "data/in.txt": "abc",
        "pipe/BUILD.py": BASE["pipe/BUILD.py"].replace('config={"i": 1}', 'inputs={"p": File("../data/in.txt")}'),
        "pipe/rules.py": BASE["pipe/rules.py"].replace("def a(config: dict) -> int:\n    return f(config[\"i\"])", "def a(p: Path) -> int:\n    return len(p.read_text())").replace("from mlbuild import rule", "from pathlib import Path\nfrom mlbuild import rule"),
    }, {"data/in.txt": "abcd"}, AB),
    Case("file-dir-empty-folder-added", {
        "data/dd/x.txt": "1",
        "pipe/BUILD.py": BASE["pipe/BUILD.py"].replace('config={"i": 1}', 'inputs={"p": File("../data/dd")}'),
        "pipe/rules.py": BASE["pipe/rules.py"].replace("def a(config: dict) -> int:\n    return f(config[\"i\"])", "def a(p: Path) -> int:\n    return len(list(p.iterdir()))").replace("from mlbuild import rule", "from pathlib import Path\nfrom mlbuild import rule"),
    }, lambda root: (root / "data/dd/empty").mkdir(), AB),
]


def _symlink_case() -> Case:
    def prepare_and_change(root: Path) -> None:
        (root / "outside/real.txt").write_text("changed!")

    return Case("file-dir-symlinked-folder", {
        "outside/real.txt": "1",
        "data/dd/x.txt": "1",
        "pipe/BUILD.py": BASE["pipe/BUILD.py"].replace('config={"i": 1}', 'inputs={"p": File("../data/dd")}'),
        "pipe/rules.py": BASE["pipe/rules.py"].replace("def a(config: dict) -> int:\n    return f(config[\"i\"])", "def a(p: Path) -> int:\n    return len((p / 'link' / 'real.txt').read_text())").replace("from mlbuild import rule", "from pathlib import Path\nfrom mlbuild import rule"),
    }, prepare_and_change, AB)


CASES.append(_symlink_case())


def _run_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case) -> Built:
    root = tmp_path / "ws"
    write(root, {**BASE, **case.files})
    if case.id == "file-dir-symlinked-folder":
        (root / "data/dd/link").symlink_to(root / "outside")
    for k, v in case.env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    monkeypatch.chdir(root)  # steps that open relative paths run from the workspace root
    first = build(root, tmp_path / "cache")
    assert not first.failures, first.failures
    again = build(root, tmp_path / "cache")
    assert again.executed == set(), f"a no-op rebuilt {again.executed}"
    for k in case.env:  # the change below restores nothing: monkeypatch undoes it at the end
        monkeypatch.setenv(k, os.environ[k]) if k in os.environ else monkeypatch.delenv(k, raising=False)
    if callable(case.change):
        case.change(root)
    else:
        write(root, case.change)
    after = build(root, tmp_path / "cache")
    assert not after.failures, after.failures
    fresh = build(root, tmp_path / "fresh-cache")
    assert after.outputs == fresh.outputs, "a served result differs from a fresh build's: a stale hit"
    assert after.executed == {f"//pipe:{n}" for n in case.expect}, after.log
    return after


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mutation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    _run_case(tmp_path, monkeypatch, case)


# -- outside the workspace: src/ layouts, sys.path edits, installed distributions ------------


def test_src_layout_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    write(src, {"srclib/__init__.py": "", "srclib/core.py": "def val():\n    return 1\n"})
    with SysPath(src):
        case = Case("src", rules("from srclib.core import val\nreturn val()"), lambda root: (src / "srclib/core.py").write_text("def val():\n    return 2\n"), AB)
        _run_case(tmp_path, monkeypatch, case)


def test_src_layout_unused_function_outside_workspace_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Code outside the workspace is checked at file granularity (statically invisible)."""
    src = tmp_path / "src"
    write(src, {"srclib/__init__.py": "", "srclib/core.py": "def val():\n    return 1\n\n\ndef other():\n    return 0\n"})
    with SysPath(src):
        case = Case("src-unused", rules("from srclib.core import val\nreturn val()"), lambda root: (src / "srclib/core.py").write_text("def val():\n    return 1\n\n\ndef other():\n    return 9\n"), A)
        _run_case(tmp_path, monkeypatch, case)


def test_sys_path_insert_in_the_rule_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = "import sys\nfrom pathlib import Path\nsys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'vendor'))\n"
    case = Case("vendor", {"vendor/vend.py": "def v():\n    return 1\n", **rules("import vend\nreturn vend.v()", head)}, sub("vendor/vend.py", "1", "2"), AB)
    try:
        _run_case(tmp_path, monkeypatch, case)
    finally:
        import sys

        sys.path[:] = [p for p in sys.path if not p.endswith("vendor")]
        sys.modules.pop("vend", None)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "lib" / "site-packages"
    folder.mkdir(parents=True)
    return folder


def test_dist_imported_inside_the_function_version_bump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: Path) -> None:
    fake_dist(site, "fakepkg_t", "1.0", "def val():\n    return 1\n")
    with SysPath(site):
        case = Case("dist-local", rules("import fakepkg_t\nreturn fakepkg_t.val()"), lambda root: fake_dist(site, "fakepkg_t", "1.1", "def val():\n    return 2\n"), AB)
        _run_case(tmp_path, monkeypatch, case)


def test_dist_dependency_of_a_dist_version_bump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: Path) -> None:
    """numpy under scikit-learn: the rule imports only the outer one."""
    fake_dist(site, "inner_t", "2.3", "def val():\n    return 1\n")
    fake_dist(site, "outer_t", "1.0", "import inner_t\n\n\ndef val():\n    return inner_t.val()\n", requires=["inner_t"])
    with SysPath(site):
        def upgrade(root: Path) -> None:
            fake_dist(site, "inner_t", "2.4", "def val():\n    return 2\n")
            sys.modules.pop("outer_t", None)  # a new process imports outer_t over the new inner_t

        case = Case("dist-transitive", rules("import outer_t\nreturn outer_t.val()"), upgrade, AB)
        after = _run_case(tmp_path, monkeypatch, case)
        assert after.causes["//pipe:a"] == "inner_t 2.3 -> 2.4 (imported by outer_t)"
        last = build(tmp_path / "ws", tmp_path / "cache")
        assert last.executed == set()


def test_dist_attribute_assignment_keeps_it_in_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: Path) -> None:
    """``torch.backends.cudnn.benchmark = True`` at module level never drops the import."""
    fake_dist(site, "torchish_t", "1.0", "FLAG = False\n\n\ndef val():\n    return 1\n")
    with SysPath(site):
        case = Case("dist-attr", rules("return torchish_t.val()", "import torchish_t\ntorchish_t.FLAG = True\n"), lambda root: fake_dist(site, "torchish_t", "1.1", "FLAG = False\n\n\ndef val():\n    return 2\n"), AB)
        _run_case(tmp_path, monkeypatch, case)


def test_unrelated_dist_version_bump_rebuilds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: Path) -> None:
    fake_dist(site, "used_t", "1.0", "def val():\n    return 1\n")
    fake_dist(site, "unused_t", "1.0", "def val():\n    return 1\n")
    with SysPath(site):
        case = Case("dist-unrelated", rules("import used_t\nreturn used_t.val()"), lambda root: fake_dist(site, "unused_t", "1.1", "def val():\n    return 2\n"), NONE)
        _run_case(tmp_path, monkeypatch, case)


# -- reused workers, edits while a build runs, and what a hit's trace holds -----------------


def test_reused_worker_counts_modules_an_earlier_action_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both steps run in this one process: the second uses lib.shared, which the first imported
    already; an edit to it rebuilds both, and one to a module only c uses rebuilds only c."""
    files = {
        "lib/shared.py": "def s():\n    return 1\n",
        "lib/conly.py": "def co():\n    return 1\n",
        "pipe/other.py": "from mlbuild import rule\nimport lib.shared\n\n\n@rule\ndef c() -> int:\n    from lib.conly import co\n    return lib.shared.s() + co()\n",
        **rules("import importlib\nreturn importlib.import_module('lib.shared').s()"),
    }
    _run_case(tmp_path, monkeypatch, Case("shared", files, sub("lib/shared.py", "1", "2"), {"a", "b", "c"}))


def test_reused_worker_module_only_an_earlier_action_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "lib/conly.py": "def co():\n    return 1\n",
        "pipe/other.py": "from mlbuild import rule\n\n\n@rule\ndef c() -> int:\n    import importlib\n    return importlib.import_module('lib.conly').co()\n",
    }
    _run_case(tmp_path, monkeypatch, Case("conly", files, sub("lib/conly.py", "1", "2"), {"c"}))


def test_edit_while_the_step_runs_is_never_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    body = "from pathlib import Path\nfrom lib.helpers import f\nv = f(1)\np = Path('lib/helpers.py')\np.write_text(p.read_text().replace('x * 2', 'x * 3'))\nreturn v"
    write(root, {**BASE, **HELPERS, **rules(body)})
    monkeypatch.chdir(root)
    first = build(root, tmp_path / "cache", ["//pipe:a"])
    assert "//pipe:a" in first.failures and "changed" in first.failures["//pipe:a"]
    assert first.outputs == {}


def test_planned_code_differs_from_what_ran_is_never_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose code is newer than the key's (an edit between planning and running)."""
    from mlbuild.cache.store import LocalStore
    from mlbuild.engine.keys.actions import ActionFactory
    from mlbuild.engine.plan.workspace import Workspace

    root = tmp_path / "ws"
    write(root, {**BASE, **HELPERS, **rules("from lib.helpers import f\nreturn f(1)")})
    store = LocalStore(tmp_path / "cache")
    ws = Workspace(root)
    factory = ActionFactory(ws, store)
    target = next(t for t in ws.targets().values() if t.label.name == "a") if hasattr(ws, "targets") else None
    if target is None:
        from mlbuild.engine.plan.planner import plan, resolve_patterns

        target = plan(ws, resolve_patterns(ws, ["//pipe:a"])).targets[resolve_patterns(ws, ["//pipe:a"])[0]]
    spec, info, env = factory.key_spec(target, {}, target.config)
    action = factory.action_spec(target, spec, info, env, {})
    (root / "lib/helpers.py").write_text("def f(x):\n    return x * 5\n")
    from mlbuild.engine.run.runner import run_action

    outcome = run_action(action, store.cas)
    assert outcome.error is None
    assert factory.code_drift(spec.rule, outcome.trace) is not None
    store.close()


def test_trace_names_what_the_step_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlbuild.cache.store import LocalStore

    root = tmp_path / "ws"
    files = {**HELPERS, "data/extra.txt": "x", **rules("import os\nfrom lib.helpers import f\nos.environ.get('KNOB_T2')\nwith open('data/extra.txt') as fh:\n    fh.read()\nreturn f(1)")}
    write(root, {**BASE, **files})
    monkeypatch.chdir(root)
    monkeypatch.delenv("KNOB_T2", raising=False)
    built = build(root, tmp_path / "cache", ["//pipe:a"])
    store = LocalStore(tmp_path / "cache")
    result = next(r for r in store.index.iter_actions() if r.label == "//pipe:a")
    store.close()
    assert result.trace is not None
    assert {"pipe/rules.py", "lib/helpers.py", "lib/__init__.py"} <= set(result.trace.files)
    assert result.trace.env == {"KNOB_T2": None}
    assert list(result.trace.reads) == ["data/extra.txt"]
    assert "reads data/extra.txt" in built.log and "KNOB_T2" in built.log


def test_strict_fails_an_undeclared_read_and_stores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    write(root, {**BASE, "data/extra.txt": "x", **rules("with open('data/extra.txt') as f:\n    return len(f.read())")})
    monkeypatch.chdir(root)
    built = build(root, tmp_path / "cache", ["//pipe:a"], strict=True)
    assert "data/extra.txt" in built.failures["//pipe:a"]
    again = build(root, tmp_path / "cache", ["//pipe:a"])
    assert again.executed == {"//pipe:a"}


def test_cause_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = Case("env-cause", rules("return 1 if os.environ.get('KNOB_T') else 0", "import os\n"), lambda root: os.environ.__setitem__("KNOB_T", "on"), AB, env={"KNOB_T": None})
    after = _run_case(tmp_path, monkeypatch, case)
    assert after.causes["//pipe:a"] == "env KNOB_T unset -> on"


def test_cause_of_a_rebuild_under_the_same_key_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    write(root, {**BASE, **MODELS_PKG, **rules("import importlib\nreturn importlib.import_module('lib.models.small').size()")})
    monkeypatch.chdir(root)
    build(root, tmp_path / "cache")
    (root / "lib/models/small.py").write_text("def size():\n    return 2\n")
    after = build(root, tmp_path / "cache")
    assert after.causes["//pipe:a"] == "lib/models/small.py changed (loaded at run time)"


def test_at_least_sixty_shapes() -> None:
    shapes = len(CASES) + sum(1 for name in globals() if name.startswith("test_") and name not in ("test_mutation", "test_at_least_sixty_shapes"))
    assert shapes >= 60, shapes


def test_why_names_the_traced_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlbuild.cache.store import LocalStore
    from mlbuild.engine.inspect.lineage_render import cause_text
    from mlbuild.engine.inspect.why import explain_dry_run, explain_target
    from mlbuild.engine.plan.workspace import Workspace

    root = tmp_path / "ws"
    write(root, {**BASE, **MODELS_PKG, **rules("import importlib\nreturn importlib.import_module('lib.models.small').size()")})
    monkeypatch.chdir(root)
    build(root, tmp_path / "cache")
    (root / "lib/models/small.py").write_text("def size():\n    return 2\n")
    store = LocalStore(tmp_path / "cache")
    try:
        dry = {a.label: a for a in explain_dry_run(Workspace(root), store, "//pipe:a").actions}
        assert dry["//pipe:a"].verdict == "would_rebuild"
        assert [cause_text(c) for c in dry["//pipe:a"].causes] == ["lib/models/small.py changed (loaded at run time)"]
    finally:
        store.close()
    build(root, tmp_path / "cache")
    store = LocalStore(tmp_path / "cache")
    try:
        done = {a.label: a for a in explain_target(store, "//pipe:a").actions}
        assert [cause_text(c) for c in done["//pipe:a"].causes] == ["lib/models/small.py changed (loaded at run time)"]
    finally:
        store.close()


def test_remote_hit_is_checked_against_the_reader_s_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A teammate's result travels with its trace; a checkout where a module the step loaded at
    run time differs takes nothing from the remote for that step."""
    import shutil

    remote = f"file://{tmp_path / 'remote'}"
    files = {**BASE, **MODELS_PKG, **rules("import importlib\nreturn importlib.import_module('lib.models.small').size()")}
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    write(alice, files)
    monkeypatch.chdir(alice)
    first = build(alice, tmp_path / "cache-alice", remote=remote)
    assert first.executed == {"//pipe:a", "//pipe:b", "//pipe:c"}
    shutil.copytree(alice, bob)
    monkeypatch.chdir(bob)
    same = build(bob, tmp_path / "cache-bob", remote=remote)
    assert same.executed == set() and same.remote_hits == {"//pipe:a", "//pipe:b", "//pipe:c"}
    (bob / "lib/models/small.py").write_text("def size():\n    return 2\n")
    changed = build(bob, tmp_path / "cache-bob-2", remote=remote)
    assert changed.executed == {"//pipe:a", "//pipe:b"}
    assert changed.remote_hits == {"//pipe:c"}
    assert changed.causes["//pipe:a"] == "lib/models/small.py changed (loaded at run time)"


@settings(max_examples=30, deadline=None)
@given(
    defaults=st.dictionaries(st.sampled_from(["alpha", "beta", "gamma", "delta"]), st.integers(-3, 3), min_size=1),
    data=st.data(),
)
def test_config_written_at_its_defaults_is_one_key(defaults: dict[str, int], data: st.DataObject) -> None:
    """Any subset of fields written explicitly at their default gives the key of writing none."""
    from mlbuild.engine.keys.actions import merge_defaults

    explicit = data.draw(st.lists(st.sampled_from(sorted(defaults)), unique=True))
    given_cfg = {k: defaults[k] for k in explicit}
    assert merge_defaults(defaults, given_cfg) == merge_defaults(defaults, {}) == defaults
    other = data.draw(st.sampled_from(sorted(defaults)))
    changed = merge_defaults(defaults, {other: defaults[other] + 1})
    assert changed != defaults


def test_lineage_shows_what_the_step_loaded_and_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlbuild.cache.store import LocalStore
    from mlbuild.engine.inspect.lineage import lineage_tree, resolve_key
    from mlbuild.engine.inspect.lineage_render import lineage_text

    root = tmp_path / "ws"
    write(root, {**BASE, **MODELS_PKG, "data/extra.txt": "x", **rules("import importlib, os\nos.environ.get('KNOB_T3')\n__import__('pathlib').Path('data/extra.txt').read_text()\nreturn importlib.import_module('lib.models.small').size()")})
    monkeypatch.chdir(root)
    monkeypatch.delenv("KNOB_T3", raising=False)
    build(root, tmp_path / "cache", ["//pipe:a"])
    store = LocalStore(tmp_path / "cache")
    try:
        text = lineage_text(lineage_tree(store, resolve_key(store, "//pipe:a")))
    finally:
        store.close()
    assert "loaded   lib/__init__.py, lib/models/__init__.py, lib/models/small.py, pipe/rules.py" in text
    assert "env var  KNOB_T3 = unset" in text
    assert "read     data/extra.txt (not a declared input)" in text
