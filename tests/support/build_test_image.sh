#!/usr/bin/env bash
# Build, or reuse, the Docker image the tests run steps in: mlbuild-test-python:3.11.
#
# Docker Hub is unreachable here, so the image is a Debian bookworm minbase rootfs made by
# debootstrap (python3 = Debian's 3.11) plus the wheels mlbuild's step runner imports
# (msgspec, xxhash, numpy, lmdb — at the host's installed versions), installed into
# /usr/local/lib/python3.11/dist-packages with the host's pip (both are CPython 3.11 on glibc
# 2.36, so the host's cp311 manylinux wheels fit). The rootfs is cached as a tarball under
# $MLBUILD_CI_CACHE keyed by a hash of its recipe, so a second run only `docker import`s it
# (seconds), and does nothing at all if the image with that recipe is already loaded.
#
#   DOCKER_HOST=... bash tests/support/build_test_image.sh     # prints the image id
#
# Env: MLBUILD_TEST_IMAGE (default mlbuild-test-python:3.11), MLBUILD_CI_CACHE
# (default /var/cache/mlbuild-ci), MLBUILD_TEST_IMAGE_PKGS (default "msgspec xxhash numpy lmdb"),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), PYTHON (host python, default python3).
set -euo pipefail

IMAGE="${MLBUILD_TEST_IMAGE:-mlbuild-test-python:3.11}"
CACHE="${MLBUILD_CI_CACHE:-/var/cache/mlbuild-ci}"
PKGS="${MLBUILD_TEST_IMAGE_PKGS:-msgspec xxhash numpy lmdb}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
PYTHON="${PYTHON:-python3}"
RECIPE_VERSION=1   # bump when the steps below change

log() { printf '[test-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
mkdir -p "$CACHE"

# Pin each package to the host's version, so the container decodes what the host encodes.
pins="$("$PYTHON" - $PKGS <<'PY'
import sys
from importlib import metadata
out = []
for name in sys.argv[1:]:
    try:
        out.append(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        out.append(name)
print(" ".join(out))
PY
)"
spec="v$RECIPE_VERSION $SUITE minbase python3 $pins"
hash="$(printf '%s' "$spec" | sha256sum | cut -c1-16)"

have="$(docker image inspect "$IMAGE" --format '{{ index .Config.Labels "org.mlbuild.recipe" }}' 2>/dev/null || true)"
if [ "$have" = "$hash" ]; then
  docker image inspect "$IMAGE" --format '{{.Id}}'
  exit 0
fi

exec 9>"$CACHE/test-image.lock"
flock -w 900 9 || { log "timed out waiting for $CACHE/test-image.lock"; exit 1; }

tarball="$CACHE/test-python-$hash.tar"
if [ ! -s "$tarball" ]; then
  log "building rootfs ($spec)"
  command -v debootstrap >/dev/null || { log "debootstrap is not installed (run .ci/setup.sh)"; exit 1; }
  work="$(mktemp -d /var/tmp/mlbuild-rootfs.XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  rootfs="$work/rootfs"
  t0=$SECONDS
  mkdir -p "$CACHE/debs"   # debootstrap keeps its .debs there: a rebuild downloads nothing
  if ! debootstrap --variant=minbase --include=python3 --cache-dir="$CACHE/debs" \
        "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
    tail -40 "$work/debootstrap.log" >&2
    tail -40 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    log "debootstrap failed"; exit 1
  fi
  log "debootstrap done in $((SECONDS - t0))s"

  wheels="$CACHE/wheels"
  mkdir -p "$wheels"
  # shellcheck disable=SC2086
  if ! "$PYTHON" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" \
        --only-binary=:all: --ignore-installed --dry-run $pins >/dev/null 2>&1; then
    log "downloading wheels: $pins"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$wheels" $pins
  fi
  # shellcheck disable=SC2086
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" \
    --only-binary=:all: --no-warn-script-location \
    --target "$rootfs/usr/local/lib/python3.11/dist-packages" $pins
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"* "$rootfs/debootstrap"
  tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp.$$" .
  mv -f "$tarball.tmp.$$" "$tarball"
  rm -rf "$work"; trap - EXIT
  log "rootfs cached in $tarball ($(du -h "$tarball" | cut -f1), $((SECONDS - t0))s)"
  # keep only this recipe's tarball
  find "$CACHE" -maxdepth 1 -name 'test-python-*.tar' ! -name "test-python-$hash.tar" -delete
fi

log "docker import $tarball -> $IMAGE"
docker import \
  --change "LABEL org.mlbuild.recipe=$hash" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$IMAGE" >/dev/null
docker image inspect "$IMAGE" --format '{{.Id}}'
