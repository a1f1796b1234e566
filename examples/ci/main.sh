#!/usr/bin/env bash
# The main-branch job: build, sign and upload to the team cache, then prove the build reproduces.
#
# Run from the workspace folder (the one holding mlbuild.toml) of a main-branch checkout.
#   MLBUILD_REMOTE_CACHE  the team cache, e.g. s3://team-bucket/mlbuild (a read-write credential)
#   MLBUILD_CACHE_KEY     the signing key, from the CI's secret store: entries are HMAC-signed
#   TARGETS               what to build (default //...)
#   OUT                   where the JSON reports go (default mlbuild-ci/)
# Exit status: 0 built and reproduced; 1 a step failed or an output did not reproduce;
# 2 a usage error (bad label, bad config, no workspace).
set -euo pipefail
targets=(${TARGETS:-//...})
out="${OUT:-mlbuild-ci}"
mkdir -p "$out"

: "${MLBUILD_REMOTE_CACHE:?set MLBUILD_REMOTE_CACHE to the team cache URL}"
if [ -z "${MLBUILD_CACHE_KEY:-}" ]; then
  echo "warning: MLBUILD_CACHE_KEY is not set: entries are uploaded unsigned" >&2
fi

mlbuild build "${targets[@]}" --json > "$out/build.json"
# Re-executes every step with its recorded inputs and compares bit for bit; never uploads.
mlbuild verify --deps "${targets[@]}"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print("main build", b["build_id"], b["actions"])' "$out/build.json"
