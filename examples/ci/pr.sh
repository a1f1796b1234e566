#!/usr/bin/env bash
# The pull-request job: build only what the change touches, reading the team cache without
# uploading; prove it reproduces; write the metrics table against the base branch.
#
# Run from the workspace folder (the one holding mlbuild.toml) of the PR checkout, with the
# base branch fetched (actions/checkout: fetch-depth: 0).
#   MLBUILD_REMOTE_CACHE  the team cache (a read-only credential is enough)
#   MLBUILD_CACHE_KEY     optional: with it, unsigned or forged entries are refused
#   BASE_REF              the base branch (default origin/main)
#   TARGETS               what to consider (default //...)
#   SUMMARY               Markdown summary file (default $GITHUB_STEP_SUMMARY, else mlbuild-ci/summary.md)
#   OUT                   where the JSON reports go (default mlbuild-ci/)
# Exit status: 0 ok; 1 a step failed, an output did not reproduce, or a --fail-on-regression
# gate (GATES, e.g. "accuracy<-0.01") was crossed; 2 a usage error.
set -euo pipefail
base_ref="${BASE_REF:-origin/main}"
targets=(${TARGETS:-//...})
out="${OUT:-mlbuild-ci}"
summary="${SUMMARY:-${GITHUB_STEP_SUMMARY:-$out/summary.md}}"
mkdir -p "$out"
: "${MLBUILD_REMOTE_CACHE:?set MLBUILD_REMOTE_CACHE to the team cache URL}"

mapfile -t affected < <(mlbuild affected --since "$base_ref" "${targets[@]}")
if [ ${#affected[@]} -eq 0 ]; then
  echo "No target changed since $base_ref." | tee -a "$summary"
  exit 0
fi
echo "affected since $base_ref: ${affected[*]}"

mlbuild build "${affected[@]}" --remote-upload=false --json > "$out/pr.json"
mlbuild verify --deps "${affected[@]}"

# The base branch's results: main's CI built and uploaded them, so this build runs nothing.
top="$(git rev-parse --show-toplevel)"
rel="$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$PWD" "$top")"
base_dir="$(mktemp -d)/base"
git worktree add --detach --quiet "$base_dir" "$base_ref"
trap 'git -C "$top" worktree remove --force "$base_dir"' EXIT
# (another folder, so another workspace: the diff below looks across workspaces)
mlbuild -C "$base_dir/$rel" build "${targets[@]}" --remote-upload=false --json > "$out/base.json"

id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["build_id"])' "$1"; }
gates=()
for g in ${GATES:-}; do gates+=(--fail-on-regression "$g"); done
status=0
mlbuild metrics diff "$(id "$out/base.json")" "$(id "$out/pr.json")" "${affected[@]}" --md --all-workspaces "${gates[@]}" \
  > "$out/metrics.md" || status=$?
{ printf '## mlbuild: %s against %s\n\n' "${affected[*]}" "$base_ref"; cat "$out/metrics.md"; } | tee -a "$summary"
exit $status
