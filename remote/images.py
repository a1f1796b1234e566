"""Container image references resolved to what pins their content, through the Docker engine.

An image's tag can move; its digest cannot. The digest, never the tag, goes into a step's
environment digest (and so its key), so retagging an image to new content rebuilds the steps
that use it, and rebuilding it to identical content does not.
"""

from __future__ import annotations

import functools
from typing import Any

from mlbuild.engine.errors import UserError

__all__ = ["docker_client", "resolve_image", "split_reference"]

@functools.cache
def docker_client() -> Any:
    """One Docker SDK client per process, from ``DOCKER_HOST`` and friends."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise UserError(f"cannot reach the Docker engine (DOCKER_HOST, docker socket): {exc}") from None
    return client


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """``registry:5000/repo:tag@sha256:…`` → (repository, tag, digest); docker.io names normalized."""
    name, _, digest = ref.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    return name, tag, digest or None


def _repo_digest(ref: str, repo_digests: list[str]) -> str | None:
    """The repo digest recorded for ``ref``'s own repository, if the image has one."""
    repo, _, _ = split_reference(ref)
    for candidate in sorted(repo_digests):
        if split_reference(candidate)[0] == repo:
            return candidate
    return None


def resolve_image(ref: str) -> str:
    """The content pin of image ``ref``: ``repo@sha256:…`` when the image has a repo digest for
    that repository (pushed to or pulled from a registry), else its image id ``sha256:…``.

    Both are digests of the content: the repo digest is that of the registry manifest, the image
    id that of the image config (which names every layer's digest). The image must be present in
    the Docker engine (build, pull or load it first); an unknown image is a UserError naming it.
    """
    import docker

    client = docker_client()
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise UserError(
            f"image {ref!r} is not in the Docker engine: build, pull or load it first "
            f"(`docker pull {ref}`)"
        ) from None
    except docker.errors.APIError as exc:
        raise UserError(f"image {ref!r} cannot be resolved: {exc.explanation or exc}") from None
    if "@" in ref:
        # Already pinned: keep the caller's pin, it names the same content.
        return ref
    pinned = _repo_digest(ref, list(image.attrs.get("RepoDigests") or []))
    return pinned or str(image.id)
