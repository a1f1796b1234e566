"""docs/ci.md's recipe, end to end: examples/ci/main.sh on a main-branch clone and
examples/ci/pr.sh on a PR clone, sharing only a file:// remote cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sweep"
SCRIPTS = REPO / "examples" / "ci"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def job(script: str, cwd: Path, cache: Path, remote: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLBUILD_CACHE_DIR": str(cache), "MLBUILD_REMOTE_CACHE": remote,
           "MLBUILD_CACHE_KEY": "team-secret", "OUT": str(cwd / "ci-out"), **extra}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run(["bash", str(SCRIPTS / script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_pr_job_builds_only_what_changed_verifies_and_prints_metrics(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    shutil.copytree(EXAMPLE, origin / "pipeline", ignore=shutil.ignore_patterns("mlbuild-out"))
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "the pipeline")
    remote = (tmp_path / "team-cache").as_uri()

    main = tmp_path / "main-ci"
    git(tmp_path, "clone", "-q", str(origin), str(main))
    ran = job("main.sh", main / "pipeline", tmp_path / "cache-main", remote)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    built = json.loads((main / "pipeline/ci-out/build.json").read_text())
    assert built["actions"]["executed"] == 3

    pr = tmp_path / "pr-ci"
    git(tmp_path, "clone", "-q", str(origin), str(pr))
    git(pr, "checkout", "-q", "-b", "faster-lr")
    params = pr / "pipeline/params.yaml"
    params.write_text(params.read_text().replace("lr: 0.1", "lr: 0.4"))
    git(pr, "commit", "-qam", "train with lr 0.4")
    ran = job("pr.sh", pr / "pipeline", tmp_path / "cache-pr", remote)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = pr / "pipeline/ci-out"
    assert "affected since origin/main: //model:train //model:evaluate" in ran.stdout
    pr_build = json.loads((out / "pr.json").read_text())
    # only the changed steps ran; the data step came from main's upload
    assert pr_build["actions"]["executed"] == 2 and pr_build["remote_hits"] == 1
    assert pr_build["remote"]["bytes_up"] == 0
    base_build = json.loads((out / "base.json").read_text())
    assert base_build["actions"]["executed"] == 0
    table = (out / "summary.md").read_text()
    assert "| //model:train.lr | 0.1 | 0.4 | +0.3 (+300.0%) |" in table
    assert "| //model:evaluate | log_loss |" in table

    # a change that makes the model worse crosses the gate: the job fails (exit 1), table written
    params.write_text(params.read_text().replace("lr: 0.4", "lr: 0.001").replace("epochs: 30", "epochs: 1"))
    git(pr, "commit", "-qam", "a much worse model")
    ran = job("pr.sh", pr / "pipeline", tmp_path / "cache-pr", remote, GATES="log_loss>0.01")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "regression: //model:evaluate log_loss: +" in ran.stderr
    assert "| //model:train.epochs | 30 | 1 |" in (out / "metrics.md").read_text()
