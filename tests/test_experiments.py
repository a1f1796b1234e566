"""Experiments (issue 14): metrics show/diff, exp run/show, plots diff, params files and --set
checks, end to end on examples/sweep (numpy only: a build takes about a second)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlbuild.engine.inspect.metrics import Change, fmt, fmt_change

from support.cli import mlbuild, mlbuild_process

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sweep"


@pytest.fixture
def sweep(tmp_path: Path, tmp_cache_dir: Path) -> Path:
    ws = tmp_path / "sweep"
    shutil.copytree(EXAMPLE, ws, ignore=shutil.ignore_patterns("mlbuild-out"))
    return ws


def build(ws: Path, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = mlbuild(ws, "build", "//model:evaluate", "--json", "-q", *args).json()
    return result


def materialized_metrics(ws: Path) -> dict[str, float]:
    data: dict[str, float] = json.loads((ws / "mlbuild-out/model/evaluate/metrics.json").read_text())
    return data


def test_metrics_show_reads_the_marked_file(sweep: Path) -> None:
    b = build(sweep)
    expected = materialized_metrics(sweep)
    shown = mlbuild(sweep, "metrics", "show", "--json").json()
    assert shown == {"build": b["build_id"], "metrics": {"//model:evaluate": expected}}
    md = mlbuild(sweep, "metrics", "show", "--md").stdout.splitlines()
    assert md[0] == "| target | metric | value |"
    assert md[2:] == [f"| //model:evaluate | {k} | {fmt(v)} |" for k, v in sorted(expected.items())]
    # a target's returned value gives metrics too: numbers are metrics, lists of numbers series
    mlbuild(sweep, "build", "//model:train", "-q")
    train = mlbuild(sweep, "metrics", "show", "//model:train", "--json").json()
    curve = (sweep / "mlbuild-out/model/train/loss.csv").read_text().splitlines()
    assert train["metrics"] == {"//model:train": {"final_loss": float(curve[-1].split(",")[1])}}


def test_metrics_diff_names_every_change_exactly(sweep: Path) -> None:
    a = build(sweep)
    old = materialized_metrics(sweep)
    b = build(sweep, "--set", "//model:train.lr=0.5")
    new = materialized_metrics(sweep)
    out = mlbuild(sweep, "metrics", "diff").stdout
    A, B = a["build_id"], b["build_id"]
    changed = [k for k in sorted(old) if old[k] != new[k]]
    assert changed, "the lr change must move some metric"
    param_rows = [["param", A, B, "change"], ["//model:train.lr", "0.1", "0.5", "+0.4 (+400.0%)"]]
    metric_rows = [["target", "metric", A, B, "change"]] + [
        ["//model:evaluate", k, fmt(old[k]), fmt(new[k]), fmt_change(Change(name=k, old=old[k], new=new[k], change=new[k] - old[k]))]
        for k in changed
    ]

    def aligned(rows: list[list[str]]) -> list[str]:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]

    assert out.splitlines() == aligned(param_rows) + [""] + aligned(metric_rows)
    # --all adds the unchanged rows; --json carries the same numbers
    everything = mlbuild(sweep, "metrics", "diff", A, B, "--all", "--json").json()
    assert {m["name"].split(" ")[1]: (m["old"], m["new"]) for m in everything["metrics"]} == {
        k: (old[k], new[k]) for k in old
    }
    assert {p["name"] for p in everything["params"]} >= {"//model:train.lr", "//model:train.epochs", "//data:points.n"}


def test_fail_on_regression_gates_ci(sweep: Path) -> None:
    build(sweep)
    build(sweep, "--set", "//model:train.lr=0.001", "--set", "//model:train.epochs=1")
    worse = mlbuild(sweep, "metrics", "diff", "--fail-on-regression", "log_loss>0.01", check=False)
    assert worse.returncode == 1
    assert "regression: //model:evaluate log_loss: +" in worse.stderr
    fine = mlbuild(sweep, "metrics", "diff", "--fail-on-regression", "accuracy<-0.9", check=False)
    assert fine.returncode == 0, fine.stderr
    unknown = mlbuild(sweep, "metrics", "diff", "--fail-on-regression", "acuracy<-0.01", check=False)
    assert unknown.returncode == 2 and "no metric named acuracy" in unknown.stderr
    bad = mlbuild(sweep, "metrics", "diff", "--fail-on-regression", "accuracy<<1", check=False)
    assert bad.returncode == 2 and "bad --fail-on-regression" in bad.stderr


def test_exp_run_grid_runs_shared_steps_once(sweep: Path) -> None:
    run = mlbuild_process(sweep, "exp", "run", "//model:evaluate", "--set", "//model:train.lr=0.05,0.1,0.5",
                          "-j", "2", "--name", "grid", "--tag", "team=ml")
    builds = [r for r in mlbuild(sweep, "builds", "--json", "--limit", "0").json() if r["name"] == "grid"]
    assert len(builds) == 3 and all(r["tags"] == {"team": "ml"} for r in builds)
    executed = [a["label"] for r in builds for a in r["actions"] if a["status"] == "executed"]
    assert executed.count("//data:points") == 1
    assert executed.count("//model:train") == 3 and executed.count("//model:evaluate") == 3
    assert "//model:train.lr" in run.stdout.splitlines()[0]  # the table's varying column
    shown = mlbuild(sweep, "exp", "show", "//model:evaluate", "--name", "grid", "--json").json()
    assert shown["varying"] == ["//model:train.lr"]
    rows = {row["params"]["//model:train.lr"]: row["metrics"] for row in shown["rows"]}
    assert set(rows) == {0.05, 0.1, 0.5}
    for lr, metrics in rows.items():
        # the stored output, materialized by an all-cached build of that variant
        again = build(sweep, "--set", f"//model:train.lr={lr}")
        assert again["actions"]["executed"] == 0
        assert materialized_metrics(sweep) == metrics
    # rows sharing a key are one row: a fourth build of lr=0.1 adds none
    build(sweep, "--set", "//model:train.lr=0.1", "--name", "grid")
    again = mlbuild(sweep, "exp", "show", "//model:evaluate", "--name", "grid", "--json").json()
    assert len(again["rows"]) == 3
    by_acc = mlbuild(sweep, "exp", "show", "//model:evaluate", "--sort", "+log_loss", "--json").json()["rows"]
    losses = [r["metrics"]["log_loss"] for r in by_acc]
    assert losses == sorted(losses)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("//model:trian.lr=0.1", "not a target of this build; did you mean //model:train"),
        ("//model:train.learning_rate=0.1", "TrainConfig has no field 'learning_rate'"),
        ("//model:train.epochs=many", "TrainConfig.epochs is int, not str"),
        ("//model:train.lr=true", "TrainConfig.lr is float, not bool"),
        ("//model:evaluate.threshold=0.5", "//model:evaluate takes no config"),
        ("//model/...:batch_size=64", "no target of the build under //model/... has a config field 'batch_size'"),
        ("//model:train=0.1", "bad --set"),
    ],
)
def test_set_mistakes_fail_before_anything_runs(sweep: Path, setting: str, message: str) -> None:
    run = mlbuild(sweep, "build", "//model:evaluate", "--set", setting, check=False)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert mlbuild(sweep, "builds", "--json").json() == []  # nothing ran, nothing recorded


def test_set_patterns_apply_to_every_target_that_has_the_field(sweep: Path) -> None:
    build(sweep)
    b = build(sweep, "--set", "//...:epochs=5")
    assert b["actions"]["executed"] == 2  # train (has epochs) and evaluate downstream; data untouched
    record = mlbuild(sweep, "builds", "show", b["build_id"], "--json").json()
    assert record["overrides"] == {"//model:train": {"epochs": 5}}


def test_params_file_sections_key_only_their_targets(sweep: Path) -> None:
    build(sweep)
    params = sweep / "params.yaml"
    params.write_text(params.read_text().replace("title: logistic", "title: a new title for logistic"))
    assert build(sweep)["actions"]["executed"] == 0
    params.write_text(params.read_text().replace("lr: 0.1", "lr: 0.3"))
    b = build(sweep)
    assert b["actions"]["executed"] == 2 and b["actions"]["cached"] == 1
    why = mlbuild(sweep, "why", "//model:train").stdout
    assert "lr" in why and "0.1" in why and "0.3" in why
    diff = mlbuild(sweep, "metrics", "diff", "--json").json()
    assert [p["name"] for p in diff["params"]] == ["//model:train.lr"]


def test_params_file_errors_name_the_file(sweep: Path) -> None:
    build_file = sweep / "model/BUILD.py"
    build_file.write_text(build_file.read_text().replace('"train")', '"trian")'))
    run = mlbuild(sweep, "build", "//model:evaluate", check=False)
    assert run.returncode == 2
    assert "params file //params.yaml: no section 'trian' (it has: prepare, report, train)" in run.stderr


def test_plots_diff_writes_a_self_contained_page_chromium_draws(sweep: Path, tmp_path: Path, browser: Any) -> None:
    a = build(sweep)["build_id"]
    b = build(sweep, "--set", "//model:train.lr=0.5")["build_id"]
    out = tmp_path / "plots.html"
    mlbuild(sweep, "plots", "diff", a, b, "-o", str(out))
    text = out.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in text
    page = browser.new_page()
    page.goto(out.as_uri())
    captions = page.locator("figcaption").all_inner_texts()
    assert "//model:train train_loss" in captions and "//model:evaluate prc.json.precision" in captions
    for figure in page.locator("figure").all():
        builds = [p.get_attribute("data-build") for p in figure.locator("polyline.series").all()]
        assert builds == [a, b]
        box = figure.locator("svg").bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
    shots = Path(__file__).resolve().parent.parent / "test-artifacts" / "plots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "plots-diff.png"), full_page=True)
    page.close()


def test_metrics_of_a_target_built_only_by_a_teammate_come_from_the_remote(sweep: Path, tmp_path: Path) -> None:
    remote = (tmp_path / "team").as_uri()
    mlbuild(sweep, "build", "//model:evaluate", "-q", "--remote-cache", remote)
    expected = materialized_metrics(sweep)
    mine = tmp_path / "mine"
    shutil.copytree(EXAMPLE, mine, ignore=shutil.ignore_patterns("mlbuild-out"))
    fresh = {"MLBUILD_CACHE_DIR": str(tmp_path / "my-cache")}
    shown = mlbuild(mine, "metrics", "show", "//model:evaluate", "--remote-cache", remote, "--json", env=fresh).json()
    assert shown == {"build": "(cache)", "metrics": {"//model:evaluate": expected}}
    other = {"MLBUILD_CACHE_DIR": str(tmp_path / "another-cache")}  # no remote given: nothing to find
    missing = mlbuild(mine, "metrics", "show", "//model:evaluate", "--json", env=other, check=False)
    assert missing.returncode == 2 and "neither the local nor the remote cache" in missing.stderr
