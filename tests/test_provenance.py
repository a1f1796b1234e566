"""Provenance recorded at build time (issue 12): a build record holds its plan, its edges by
producer key, its workspace and its process; lineage, why, diff, show, builds and the UI's data
read that record, never a digest lookup, another workspace's builds or today's BUILD.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mlbuild.cache.records import BuildRecord
from mlbuild.cache.store import LocalStore

from support.cli import mlbuild
from support.workspace import write_workspace

# Two steps (a, b) whose outputs are the same bytes, consumed by two different steps (c, d);
# `report` writes a files output (metrics.json) from c.
RULES = '''
from pathlib import Path
from mlbuild import rule


@rule
def threshold_a(config: dict) -> dict:
    return {"threshold": 0.5}


@rule
def threshold_b(config: dict) -> dict:
    return {"threshold": 0.5}


@rule
def use(x: dict, config: dict) -> dict:
    return {"who": config["who"], "t": x["threshold"]}


@rule
def report(x: dict, out: Path) -> None:
    (out / "metrics.json").write_text(str(x))
'''

BUILD = '''
from mlbuild import target
target(name="a", rule="rules.py:threshold_a", config={"v": 1})
target(name="b", rule="rules.py:threshold_b", config={"v": 2})
target(name="c", rule="rules.py:use", inputs={"x": ":a"}, config={"who": "c"})
target(name="d", rule="rules.py:use", inputs={"x": ":b"}, config={"who": "d"})
target(name="evaluate", rule="rules.py:report", inputs={"x": ":c"})
'''


def workspace(root: Path, name: str = "dup") -> Path:
    return write_workspace(root, {"src/rules.py": RULES, "src/BUILD.py": BUILD}, name=name)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return workspace(tmp_path / "ws")


def store() -> LocalStore:
    return LocalStore(Path(os.environ["MLBUILD_CACHE_DIR"]))


def records() -> list[BuildRecord]:
    s = store()
    try:
        return s.index.list_builds()
    finally:
        s.close()


def build(ws: Path, *args: str) -> dict[str, Any]:
    summary: dict[str, Any] = mlbuild(ws, "build", "-q", "--json", *args).json()
    return summary


def keys(record: BuildRecord) -> dict[str, str]:
    return {a.label: a.key for a in record.actions if a.key}


# -- identical outputs, different producers ---------------------------------------------------


def test_identical_outputs_keep_their_own_producers(ws: Path) -> None:
    first = build(ws, "//src:all")
    record = next(r for r in records() if r.id == first["build_id"])
    k = keys(record)
    assert record.schema == 2 and record.workspace_id and record.pid == os.getpid()
    # a and b produced the same bytes; each consumer's edge names its own producer.
    s = store()
    try:
        ra, rb = s.index.get_action(k["//src:a"]), s.index.get_action(k["//src:b"])
        assert ra is not None and rb is not None and ra.result_digest() == rb.result_digest()
        assert sorted(s.index.producers_of(ra.result_digest())) == sorted([k["//src:a"], k["//src:b"]])
        rc, rd = s.index.get_action(k["//src:c"]), s.index.get_action(k["//src:d"])
        assert rc is not None and rd is not None
        assert rc.producers == {"x": k["//src:a"]} and rd.producers == {"x": k["//src:b"]}
    finally:
        s.close()
    edges = {(e.consumer, e.input, e.producer) for e in record.edges}
    assert (k["//src:c"], "x", k["//src:a"]) in edges and (k["//src:d"], "x", k["//src:b"]) in edges
    assert {p.label: p.inputs for p in record.plan}["//src:d"] == {"x": "//src:b"}

    # lineage follows the recorded producer, whichever wrote the digest last
    lin = mlbuild(ws, "lineage", "--json", "//src:d").json()
    assert [(u["input"], u["label"], u["key"]) for u in lin["nodes"][0]["upstream"]] == [("x", "//src:b", k["//src:b"])]
    lin = mlbuild(ws, "lineage", "--json", "//src:c").json()
    assert [u["label"] for u in lin["nodes"][0]["upstream"]] == ["//src:a"]
    # a query by the shared digest says there are two producers
    text = mlbuild(ws, "lineage", ra.result_digest()).stdout
    assert "2 actions produced the bytes" in text and "//src:a" in text and "//src:b" in text

    # the UI's inputs tab, for this build and without one
    from mlbuild.engine.ui.views import build_detail, step_detail

    s = store()
    try:
        for build_id in (record.id, None):
            assert step_detail(s, k["//src:d"], build_id).inputs[0].producer_label == "//src:b"
            assert step_detail(s, k["//src:c"], build_id).inputs[0].producer_key == k["//src:a"]
        # downstream of a step: the consumers recorded for its key; by the bytes: both consumers
        from mlbuild.engine.inspect.lineage import consumers
        from mlbuild.engine.ui.explain import lineage

        assert {c.label for c in lineage(s, k["//src:a"], None, record.id).downstream} == {"//src:c", "//src:evaluate"}
        assert {c.label for c in lineage(s, k["//src:b"]).downstream} == {"//src:d"}
        assert {c.label for c in consumers(s, ra.result_digest())} == {"//src:c", "//src:d"}
        dag = build_detail(s, record.id).dag
        assert {(e.source, e.target, e.input) for e in dag.edges} == {
            ("//src:a", "//src:c", "x"), ("//src:b", "//src:d", "x"), ("//src:c", "//src:evaluate", "x")}
    finally:
        s.close()

    # b's code changes, its bytes do not: diff names b's function, and nothing for c or d
    (ws / "src" / "rules.py").write_text(RULES.replace('def threshold_b(config: dict) -> dict:\n',
                                                       'def threshold_b(config: dict) -> dict:\n    assert config\n'))
    second = build(ws, "//src:all")
    diff = mlbuild(ws, "diff", "--json", first["build_id"], second["build_id"]).json()
    by = {t["label"]: t for t in diff["targets"]}
    assert by["//src:b"]["status"] == "changed"
    assert [(c["kind"], c["name"]) for c in by["//src:b"]["causes"]] == [("function", "src.rules.threshold_b")]
    assert by["//src:a"]["status"] == by["//src:c"]["status"] == by["//src:d"]["status"] == "same"
    # d was taken from the cache in the second build: its edge there is b's new key
    newer = next(r for r in records() if r.id == second["build_id"])
    k2 = keys(newer)
    assert k2["//src:d"] == k["//src:d"] and k2["//src:b"] != k["//src:b"]
    assert (k2["//src:d"], "x", k2["//src:b"]) in {(e.consumer, e.input, e.producer) for e in newer.edges}
    lin = mlbuild(ws, "lineage", "--json", "//src:d").json()
    assert lin["build"] == newer.id and lin["nodes"][0]["upstream"][0]["key"] == k2["//src:b"]


def test_lineage_of_a_file_under_mlbuild_out(ws: Path) -> None:
    build(ws, "//src:evaluate")
    metrics = ws / "mlbuild-out" / "src" / "evaluate" / "metrics.json"
    assert metrics.is_file()
    lin = mlbuild(ws, "lineage", "--json", str(metrics)).json()
    assert [n["label"] for n in lin["nodes"]] == ["//src:evaluate", "//src:c", "//src:a"]
    assert lin["notes"] == []
    metrics.write_text("edited by hand")
    text = mlbuild(ws, "lineage", str(metrics)).stdout
    assert "was changed after mlbuild put it there" in text
    assert mlbuild(ws, "lineage", "--json", str(ws / "mlbuild-out" / "src" / "evaluate")).json()["root"] == lin["root"]


# -- workspaces sharing a cache ----------------------------------------------------------------


def test_workspaces_sharing_a_cache_stay_in_their_own(tmp_path: Path) -> None:
    main_ws = workspace(tmp_path / "main")
    scratch = workspace(tmp_path / "scratch")
    ours = build(main_ws, "//src:c")
    theirs = build(scratch, "//src:c", "--set", '//src:c.who="scratch"')
    listed = [b["id"] for b in mlbuild(main_ws, "builds", "--json").json()]
    assert listed == [ours["build_id"]]
    assert {b["id"] for b in mlbuild(main_ws, "builds", "--json", "--all-workspaces").json()} == {
        ours["build_id"], theirs["build_id"]}
    assert mlbuild(main_ws, "why", "--json", "//src:c").json()["build"] == ours["build_id"]
    assert mlbuild(scratch, "why", "--json", "//src:c").json()["build"] == theirs["build_id"]
    assert mlbuild(main_ws, "show", "--json", "//src:c").json()["//src:c"]["value"]["who"] == "c"
    assert mlbuild(scratch, "show", "--json", "//src:c").json()["//src:c"]["value"]["who"] == "scratch"
    # another workspace's build by id: named as such, and reachable with --all-workspaces
    other = mlbuild(main_ws, "builds", "show", theirs["build_id"], check=False)
    assert other.returncode == 2 and "another workspace" in other.stderr and str(scratch.resolve()) in other.stderr
    assert mlbuild(main_ws, "builds", "--all-workspaces", "show", theirs["build_id"], "--json").json()["id"] == theirs["build_id"]
    # the UI's list: this workspace by default, every one on request, each build's workspace shown
    from mlbuild.engine.inspect.recorded import ALL, Scope
    from mlbuild.engine.run import provenance
    from mlbuild.engine.ui.views import list_builds, workspace_scope, workspaces

    s = store()
    try:
        here = Scope(provenance.workspace_id("dup", main_ws), str(main_ws))
        assert [b.id for b in list_builds(s, scope=here).builds] == [ours["build_id"]]
        everything = list_builds(s, scope=workspace_scope("all", here)).builds
        assert {b.workspace for b in everything} == {str(main_ws.resolve()), str(scratch.resolve())}
        assert workspace_scope(None, here) == here and workspace_scope("all", here) == ALL
        assert {(w.root, w.current) for w in workspaces(s, here).workspaces} == {
            (str(main_ws.resolve()), True), (str(scratch.resolve()), False)}
    finally:
        s.close()


# -- show follows the latest build ---------------------------------------------------------------


def test_show_after_set_and_by_build(ws: Path) -> None:
    plain = build(ws, "//src:c")
    build(ws, "//src:c", "--set", '//src:c.who="hundred"')
    shown = mlbuild(ws, "show", "--json", "//src:c").json()["//src:c"]
    assert shown["value"]["who"] == "hundred"
    older = mlbuild(ws, "show", "--build", plain["build_id"][-8:], "//src:c")
    assert '"who": "c"' in older.stdout and "replacing them with build" in older.stderr
    assert mlbuild(ws, "show", "--json", "--set", '//src:c.who="hundred"', "//src:c").json()["//src:c"]["value"]["who"] == "hundred"
    missing = mlbuild(ws, "show", "--set", '//src:c.who="never"', "//src:c", check=False)
    assert missing.returncode == 2 and "is not built" in missing.stderr


def test_show_in_a_fresh_cache_reads_the_remote(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = f"file://{tmp_path / 'team-cache'}"
    build(ws, "//src:c", "--remote-cache", remote)
    monkeypatch.setenv("MLBUILD_CACHE_DIR", str(tmp_path / "fresh-cache"))  # another machine, say
    shutil.rmtree(ws / "mlbuild-out")
    assert mlbuild(ws, "show", "//src:c", check=False).returncode == 2  # nothing here, no remote
    shown = mlbuild(ws, "show", "--json", "--remote-cache", remote, "//src:c").json()["//src:c"]
    assert shown["value"]["who"] == "c" and "build" not in shown
    assert (ws / "mlbuild-out" / "src" / "c.value.msgpack").is_file()


# -- a past build is drawn from its record ---------------------------------------------------------


def test_record_read_back_after_build_py_changed(ws: Path) -> None:
    first = build(ws, "//src:evaluate")
    from mlbuild.engine.ui.views import build_detail

    def drawn() -> tuple[set[str], set[tuple[str, str, str]]]:
        s = store()
        try:
            dag = build_detail(s, first["build_id"]).dag
        finally:
            s.close()
        return {n.label for n in dag.nodes}, {(e.source, e.target, e.input) for e in dag.edges}

    before = drawn()
    assert before == ({"//src:a", "//src:c", "//src:evaluate"},
                      {("//src:a", "//src:c", "x"), ("//src:c", "//src:evaluate", "x")})
    marker = ws / "imported"
    (ws / "src" / "BUILD.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n" + BUILD.replace('inputs={"x": ":c"}', 'inputs={"x": ":d"}'))
    assert drawn() == before
    assert not marker.exists(), "drawing a past build imported BUILD.py"
    lin = mlbuild(ws, "lineage", "--json", "//src:evaluate").json()
    assert [n["label"] for n in lin["nodes"]] == ["//src:evaluate", "//src:c", "//src:a"]
    assert not marker.exists()


def test_old_records_without_edges_show_a_note(ws: Path) -> None:
    first = build(ws, "//src:c")
    s = store()
    try:
        record = s.index.get_build(first["build_id"])
        assert record is not None
        k = keys(record)
        # As mlbuild wrote them before schema 2: no schema, plan, edges or producers.
        old = {f: v for f, v in msgspec.to_builtins(record).items()
               if f not in ("schema", "workspace_id", "pid", "process", "plan", "edges", "seconds")}
        raw = msgspec.msgpack.encode(old)
        result = s.index.get_action(k["//src:c"])
        assert result is not None
        old_result = {f: v for f, v in msgspec.to_builtins(result).items() if f not in ("producers", "seconds", "schema")}
        with s.index.env.begin(write=True) as txn:
            txn.put(record.id.encode(), raw, db=s.index.db["builds"])
            txn.put(result.key.encode(), msgspec.msgpack.encode(old_result), db=s.index.db["actions"])
        assert s.index.get_build(record.id).schema == 1  # type: ignore[union-attr]
        from mlbuild.engine.ui.views import build_detail

        dag = build_detail(s, record.id).dag
        assert dag.edges == [] and dag.note and not dag.planned
    finally:
        s.close()
    shown = mlbuild(ws, "builds", "--all-workspaces", "show", first["build_id"]).stdout
    assert "its edges are not known" in shown
    lin = mlbuild(ws, "lineage", "--all-workspaces", "--json", k["//src:c"]).json()
    assert lin["nodes"][0]["upstream"] == [] and lin["nodes"][0]["unknown"] == ["x"] and lin["nodes"][0]["note"]


# -- build ids ----------------------------------------------------------------------------------


def test_unique_substring_and_ambiguous_build_ids(ws: Path) -> None:
    ids = [build(ws, "//src:a")["build_id"], build(ws, "//src:a", "--no-cache")["build_id"]]
    for build_id in ids:
        # the end of the id: the last second of its start and its random part
        assert mlbuild(ws, "builds", "show", "--json", build_id[-8:-1]).json()["id"] == build_id
    common = os.path.commonprefix(ids)[:8]
    amb = mlbuild(ws, "builds", "show", common, check=False)
    assert amb.returncode == 2 and "ambiguous" in amb.stderr and ids[0] in amb.stderr and ids[1] in amb.stderr
    assert mlbuild(ws, "diff", "--json", ids[0][-8:], ids[1][-8:]).json()["old"] == ids[0]
    assert mlbuild(ws, "why", "--json", "--build", ids[1][-8:], "//src:a").json()["build"] == ids[1]
    from mlbuild.engine.ui.views import NotFound, find

    s = store()
    try:
        assert find(s, ids[1][-8:]).id == ids[1]
        with pytest.raises(NotFound, match="ambiguous"):
            find(s, common)
    finally:
        s.close()


def test_closed_stdout_is_no_traceback(ws: Path) -> None:
    build_id = build(ws, "//src:all")["build_id"]
    for args in (["builds", "show", build_id, "--json"], ["builds", "--json"], ["lineage", "--json", "//src:d"]):
        proc = subprocess.Popen([sys.executable, "-m", "mlbuild", *args], cwd=ws, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before a byte is written, as `| head` may be
        with proc.stderr:
            err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 128 + signal.SIGPIPE
        assert "Traceback" not in err and "BrokenPipe" not in err, err


# -- builds end honestly ------------------------------------------------------------------------

SLOW_RULES = '''
import os, time
from pathlib import Path
from mlbuild import rule


@rule
def first(config: dict) -> int:
    return 1


@rule
def hang(x: int, config: dict) -> int:
    Path(config["pidfile"]).write_text(str(os.getpid()))
    while not Path(config["release"]).exists():
        time.sleep(0.05)
    return x


@rule
def after(x: int) -> int:
    return x + 1
'''


def slow_workspace(root: Path) -> Path:
    build_py = (
        "from mlbuild import target\n"
        'target(name="first", rule="rules.py:first")\n'
        f'target(name="hang", rule="rules.py:hang", inputs={{"x": ":first"}}, '
        f'config={{"pidfile": {str(root / "worker.pid")!r}, "release": {str(root / "release")!r}}})\n'
        'target(name="after", rule="rules.py:after", inputs={"x": ":hang"})\n'
    )
    return write_workspace(root, {"p/rules.py": SLOW_RULES, "p/BUILD.py": build_py}, name="slow")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_build(ws: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``mlbuild build //p:after`` on the local executor (worker processes), until its step
    ``hang`` runs; returns the process and the worker's pid."""
    proc = subprocess.Popen([sys.executable, "-m", "mlbuild", "build", "-j", "1", "//p:after"], cwd=ws,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    pidfile = ws / "worker.pid"
    worker = int(wait_for("the step to start", lambda: pidfile.exists() and pidfile.read_text()))
    return proc, worker


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_interrupts_the_build_and_its_workers(tmp_path: Path, signum: int) -> None:
    ws = slow_workspace(tmp_path / "ws")
    proc, worker = start_build(ws)
    try:
        assert alive(worker)
        running = wait_for("the running record", lambda: next((r for r in records() if r.status == "running"), None))
        # a running build's steps that have not run yet come from its recorded plan
        assert [p.label for p in running.plan] == ["//p:first", "//p:hang", "//p:after"]
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + signum, err
        assert "Traceback" not in err.decode()
        wait_for("the worker to be gone", lambda: not alive(worker), timeout=30)
        record = records()[0]
        assert record.status == "interrupted" and record.finished is not None and (record.seconds or 0) >= 0
        fate = {a.label: (a.status, a.because) for a in record.actions}
        assert fate["//p:first"][0] == "executed"
        assert fate["//p:hang"] == ("interrupted", "the build was interrupted"), [(a.label, a.status, a.because, a.error) for a in record.actions]
        assert fate["//p:after"] == ("not_run", "the build was interrupted")
        assert all(a.seconds >= 0 for a in record.actions)
        shown = mlbuild(ws, "builds", "show", record.id).stdout
        assert "not_run" in shown and "interrupted" in shown
    finally:
        (ws / "release").touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_killed_build_is_abandoned_and_leaves_no_worker(tmp_path: Path) -> None:
    ws = slow_workspace(tmp_path / "ws")
    proc, worker = start_build(ws)
    try:
        proc.kill()  # SIGKILL: nothing of mlbuild's runs; the record stays "running"
        proc.wait(timeout=60)
        # the worker notices its build is gone and exits by itself
        wait_for("the orphaned worker to exit", lambda: not alive(worker), timeout=30)
        listed = mlbuild(ws, "builds", "--json").json()
        assert listed[0]["status"] == "running"  # the record as written...
        text = mlbuild(ws, "builds").stdout
        assert "abandoned" in text.splitlines()[0]  # ...shown for what it is
        assert mlbuild(ws, "builds", "--status", "abandoned", "--json").json()[0]["id"] == listed[0]["id"]
        from mlbuild.engine.ui.views import build_detail, list_builds

        s = store()
        try:
            assert list_builds(s).builds[0].status == "abandoned"
            nodes = {n.label: n.status for n in build_detail(s, listed[0]["id"]).dag.nodes}
            assert nodes["//p:after"] == "not_run"
        finally:
            s.close()
    finally:
        (ws / "release").touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# -- reproduce ----------------------------------------------------------------------------------

GIT = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test", "-c", "commit.gpgsign=false"]


def test_reproduce_refuses_untracked_and_ungitted_workspaces(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    no_git = build(ws, "//src:a")["build_id"]
    out = mlbuild(ws, "reproduce", no_git, check=False)
    assert out.returncode == 2 and "no git commit recorded" in out.stderr and "Traceback" not in out.stderr
    subprocess.run([*GIT, "init", "-q", str(ws)], check=True)
    (ws / ".gitignore").write_text("mlbuild-out/\n")
    subprocess.run([*GIT, "-C", str(ws), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(ws), "commit", "-qm", "init"], check=True)
    clean = build(ws, "//src:a", "--no-cache")["build_id"]
    assert next(r for r in records() if r.id == clean).git_dirty is False
    (ws / "src" / "notes.txt").write_text("not committed")  # untracked: the tree is dirty
    dirty = build(ws, "//src:a", "--no-cache")["build_id"]
    assert next(r for r in records() if r.id == dirty).git_dirty is True
    out = mlbuild(ws, "reproduce", dirty, check=False)
    assert out.returncode == 2 and "uncommitted or untracked" in out.stderr


def test_a_chain_and_a_fanout_sharing_bytes_draw_their_own_edges(tmp_path: Path) -> None:
    """Step i of both synthetic builds produces the same bytes: each DAG has only its own edges
    (digest matching once drew the chain an edge from the fan-out's last step: a cycle)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        from ui_synth import write_build
    finally:
        sys.path.pop(0)
    from mlbuild.engine.ui.views import build_detail

    s = store()
    try:
        n = 300
        fanout = write_build(s, n, "fanout", build_id="20260101-000000-aaaaaa")
        chain = write_build(s, n, "chain", build_id="20260101-000001-bbbbbb")
        label = {i: f"//p{i // 100:04d}:t{i}" for i in range(n)}
        edges = {(e.source, e.target) for e in build_detail(s, chain.id).dag.edges}
        assert edges == {(label[i - 1], label[i]) for i in range(1, n)}
        edges = {(e.source, e.target) for e in build_detail(s, fanout.id).dag.edges}
        assert edges == {(label[0], label[i]) for i in range(1, n)}
        last = chain.actions[-1].key
        assert last is not None
        from mlbuild.engine.inspect.lineage import lineage_tree

        assert len(lineage_tree(s, last, record=chain).nodes) == n
    finally:
        s.close()
