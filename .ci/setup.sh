#!/usr/bin/env bash
# Install everything CI needs on a bare Debian 12 machine (root, Python 3.11 on PATH).
# Idempotent and fast when everything is already there: every step checks before it installs.
#
#   bash .ci/setup.sh            # apt packages + pip packages + the project (editable)
#
# Env: PYTHON (default python3), MLBUILD_CI_CACHE (default /var/cache/mlbuild-ci).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CACHE="${MLBUILD_CI_CACHE:-/var/cache/mlbuild-ci}"
EXTRAS="dev,ml,remote,ui,codecs,examples"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }

$SUDO mkdir -p "$CACHE"

# ---------------------------------------------------------------- Debian packages
t0=$(now)
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == *"install ok installed"* ]]; }
want=(docker.io debootstrap chromium busybox-static ca-certificates)
missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
# docker-registry (for repo digests) is optional: only where the archive has it.
if ! installed docker-registry; then missing+=("docker-registry?"); fi

if [ ${#missing[@]} -gt 0 ]; then
  log "apt: missing ${missing[*]}; apt-get update"
  $SUDO apt-get update -q
  pkgs=()
  for p in "${missing[@]}"; do
    if [ "$p" = "docker-registry?" ]; then
      # Read the whole answer first: with pipefail, `grep -q` exiting at its match makes
      # apt-cache die of SIGPIPE and the pipeline "fail", which read as "not available".
      policy="$(apt-cache policy docker-registry 2>/dev/null || true)"
      if grep -q 'Candidate: [0-9]' <<<"$policy"; then
        pkgs+=(docker-registry)
      else
        log "apt: docker-registry not available here; images will have no repo digest"
      fi
    else
      pkgs+=("$p")
    fi
  done
  log "apt: installing ${pkgs[*]}"
  $SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"
else
  log "apt: all packages present"
fi
log "apt done in $(since "$t0")"

# ---------------------------------------------------------------- pip packages
t0=$(now)
PIP=("$PYTHON" -m pip)
check() { "$PYTHON" "$REPO/tests/support/check_requirements.py" "$@"; }
REQS="$REPO/tests/support/requirements-ci.txt"
# A preinstalled awscli pins botocore exactly; s3fs's aiobotocore would otherwise move
# botocore under it and `pip check` fails. Keep it in every resolve, at its version.
keep=()
awscli_v="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("awscli"))' 2>/dev/null || true)"
if [ -n "$awscli_v" ]; then keep+=("awscli==$awscli_v"); fi
if check -r "$REQS" 2>/dev/null; then
  log "pip: CI requirements already satisfied"
else
  check -r "$REQS" || true   # says what is missing
  log "pip: installing CI requirements"
  # torch first and alone, pinned: it comes from local disk; a resolver run that sees an
  # unpinned torch could otherwise go for a CUDA build.
  "${PIP[@]}" install --progress-bar off 'torch==2.13.0'
  "${PIP[@]}" install --progress-bar off -r "$REQS" "${keep[@]}"
fi
log "pip requirements done in $(since "$t0")"

# ---------------------------------------------------------------- the project itself
t0=$(now)
if [ -f "$REPO/pyproject.toml" ]; then
  dist="$("$PYTHON" -c 'import sys,tomllib; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["name"])' "$REPO/pyproject.toml" 2>/dev/null || echo mlbuild)"
  prefix="$("$PYTHON" -c 'import sys; print(sys.prefix)')"
  stamp="$CACHE/editable-$(printf '%s %s' "$REPO" "$prefix" | sha256sum | cut -c1-16).stamp"
  want_stamp="$(cat "$REPO/pyproject.toml" "$REQS" | sha256sum | cut -d' ' -f1) $PYTHON $prefix"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] && check "$dist[$EXTRAS]" 2>/dev/null \
     && "$PYTHON" - "$dist" "$REPO" <<'PY'
import json, os, sys
from importlib import metadata
d = metadata.distribution(sys.argv[1])
url = json.loads(d.read_text("direct_url.json") or "{}").get("url", "")
sys.exit(0 if os.path.realpath(url.removeprefix("file://")) == os.path.realpath(sys.argv[2]) else 1)
PY
  then
    log "pip: $dist already installed editable from $REPO"
  else
    log "pip: pip install -e .[$EXTRAS]"
    "${PIP[@]}" install --progress-bar off -e "$REPO[$EXTRAS]" -r "$REQS" "${keep[@]}"
    $SUDO sh -c "printf '%s\n' '$want_stamp' > '$stamp'"
  fi
else
  log "pip: no pyproject.toml in $REPO: the checkout is broken"; exit 1
fi
command -v pyenv >/dev/null 2>&1 && pyenv rehash 2>/dev/null || true   # shims for new console scripts
log "project done in $(since "$t0")"

# ---------------------------------------------------------------- consistency
t0=$(now)
if ! "${PIP[@]}" check; then
  log "pip check found conflicts (above)"
  [ "${MLBUILD_CI_STRICT_PIP_CHECK:-1}" = 1 ] && exit 1
fi
log "pip check done in $(since "$t0")"
