#!/usr/bin/env bash
# Start, or reuse, the services the tests need, and write their settings to an env file.
#
#   bash .ci/services.sh                    # docker + registry + test image (the default)
#   bash .ci/services.sh docker image       # only some of them
#   . /tmp/mlbuild-ci.env                   # then: DOCKER_HOST, MLBUILD_TEST_IMAGE, ...
#
# - dockerd: its own socket/data/exec roots, so it never collides with another daemon;
#   started in the background (setsid, logs under $STATE), bounded wait until `docker info`.
# - registry: Debian's docker-registry on 127.0.0.1:$MLBUILD_REGISTRY_PORT (default 5000),
#   when the package is installed; pushing to it gives images a repo digest (name@sha256:…).
# - image: mlbuild-test-python:3.11 (tests/support/build_test_image.sh), pushed to the registry.
# Everything is reused when already running. The env file is rewritten from what is live.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${MLBUILD_CI_ENV:-/tmp/mlbuild-ci.env}"
STATE="${MLBUILD_CI_STATE:-/run/mlbuild-ci}"
SOCK=/run/mlbuild-docker.sock
DOCKER_DATA=/var/lib/mlbuild-docker
REGISTRY_DATA=/var/lib/mlbuild-registry
REGISTRY_PORT="${MLBUILD_REGISTRY_PORT:-5000}"
REGISTRY="127.0.0.1:$REGISTRY_PORT"
IMAGE="${MLBUILD_TEST_IMAGE:-mlbuild-test-python:3.11}"
DOCKER_WAIT_S="${MLBUILD_DOCKER_WAIT_S:-60}"
export DOCKER_HOST="unix://$SOCK"

log() { printf '[services %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
mkdir -p "$STATE"

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(docker registry image)
wants() { local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

docker_up() { timeout 10 docker info >/dev/null 2>&1; }
registry_up() { curl -fsS -m 3 "http://$REGISTRY/v2/" >/dev/null 2>&1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_docker() {
  if docker_up; then log "dockerd already answering on $DOCKER_HOST"; return; fi
  command -v dockerd >/dev/null || { log "dockerd is not installed (run .ci/setup.sh)"; return 1; }
  if ! alive "$STATE/dockerd.pid"; then
    rm -f "$STATE/dockerd.pid"
    mkdir -p "$DOCKER_DATA"
    log "starting dockerd (log: $STATE/dockerd.log)"
    setsid nohup dockerd \
      --data-root "$DOCKER_DATA" \
      --exec-root /run/mlbuild-docker-exec \
      -H "unix://$SOCK" \
      --pidfile "$STATE/dockerd.pid" \
      >"$STATE/dockerd.log" 2>&1 </dev/null &
  else
    log "dockerd (pid $(cat "$STATE/dockerd.pid")) is starting; waiting"
  fi
  local deadline=$((SECONDS + DOCKER_WAIT_S))
  until docker_up; do
    if [ $SECONDS -ge $deadline ]; then
      tail -30 "$STATE/dockerd.log" >&2 || true
      log "dockerd did not answer within ${DOCKER_WAIT_S}s"; return 1
    fi
    sleep 0.5
  done
  log "dockerd ready"
}

start_registry() {
  if registry_up; then log "registry already answering on $REGISTRY"; return; fi
  if ! command -v docker-registry >/dev/null; then
    log "docker-registry not installed: images get no repo digest"; return 0
  fi
  mkdir -p "$REGISTRY_DATA"
  cat >"$STATE/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DATA
  delete:
    enabled: true
http:
  addr: $REGISTRY
YML
  if ! alive "$STATE/registry.pid"; then
    log "starting docker-registry on $REGISTRY (log: $STATE/registry.log)"
    setsid nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 </dev/null &
    echo $! >"$STATE/registry.pid"
  fi
  local deadline=$((SECONDS + 30))
  until registry_up; do
    if [ $SECONDS -ge $deadline ]; then
      tail -30 "$STATE/registry.log" >&2 || true
      log "registry did not answer within 30s"; return 1
    fi
    sleep 0.3
  done
  log "registry ready"
}

build_image() {
  docker_up || { log "image needs dockerd"; return 1; }
  MLBUILD_TEST_IMAGE="$IMAGE" bash "$REPO/tests/support/build_test_image.sh" >/dev/null
  if registry_up; then
    local remote="$REGISTRY/${IMAGE}"
    docker tag "$IMAGE" "$remote"
    docker push -q "$remote" >/dev/null
  fi
  log "image $IMAGE ready"
}

wants docker && start_docker
wants registry && start_registry
wants image && build_image

# ------------------------------------------------------------- the env file, from what is live
tmp="$(mktemp "$ENV_FILE.XXXXXX")"
{
  echo "# written by .ci/services.sh at $(date -Is); source it"
  if docker_up; then
    echo "export DOCKER_HOST=$DOCKER_HOST"
    if id="$(docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null)"; then
      echo "export MLBUILD_TEST_IMAGE=$IMAGE"
      echo "export MLBUILD_TEST_IMAGE_ID=$id"
      ref="$(docker image inspect "$IMAGE" --format '{{range .RepoDigests}}{{println .}}{{end}}' 2>/dev/null \
             | grep "^$REGISTRY/" | head -1 || true)"
      [ -n "$ref" ] && echo "export MLBUILD_TEST_IMAGE_REF=$ref"
    fi
  fi
  registry_up && echo "export MLBUILD_TEST_REGISTRY=$REGISTRY"
  command -v chromium >/dev/null && echo "export MLBUILD_TEST_CHROMIUM=$(command -v chromium)"
  true
} >"$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$ENV_FILE"
log "wrote $ENV_FILE"
cat "$ENV_FILE" >&2
