"""``with RayCluster(workers=4, resources=Resources(cpus=2)) as ray:`` — a Ray cluster of a
step's own, for its distributed work, torn down when the block ends.

The same code runs anywhere:

- in a step of a ``--executor kuberay`` build (whose pods carry ``MLBUILD_KUBERAY_NAMESPACE`` and
  ``MLBUILD_KUBERAY_IMAGE``), or wherever a namespace is given, it creates a RayCluster on
  Kubernetes through KubeRay from the step's image, waits for it, connects, and deletes it on
  exit (also on an exception);
- elsewhere it starts a local Ray sized ``workers × resources`` and shuts it down on exit;
- inside a Ray task that is already connected to a cluster (a step of a ``--executor ray``
  build) with no namespace configured, it yields that connected Ray and leaves it running.

What ``as`` gives is the ``ray`` module, connected: ``ray.remote``, ``ray.get`` work at once.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import uuid
from types import ModuleType, TracebackType
from typing import Any

from mlbuild.remote.kuberay.manifest import ENV_CONTEXT, ENV_IMAGE, ENV_NAMESPACE
from mlbuild.rules.rule import Resources

__all__ = ["ENV_CONTEXT", "ENV_IMAGE", "ENV_NAMESPACE", "RayCluster"]


class RayCluster:
    """A Ray cluster for the duration of a ``with`` block; see the module docstring."""

    def __init__(
        self,
        workers: int = 1,
        resources: Resources | None = None,
        *,
        image: str | None = None,
        namespace: str | None = None,
        kube_context: str | None = None,
        ready_timeout_s: float = 600.0,
        api_client: Any = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"RayCluster needs at least one worker, got workers={workers}")
        self.workers = workers
        self.resources = resources or Resources()
        self.image = image or os.environ.get(ENV_IMAGE)
        self.namespace = namespace or os.environ.get(ENV_NAMESPACE)
        self.kube_context = kube_context or os.environ.get(ENV_CONTEXT)
        self.ready_timeout_s = ready_timeout_s
        self.api_client = api_client
        self.address: str | None = None
        """Where the cluster's head is (``ray://…`` on Kubernetes), once entered."""
        self.cluster_name: str | None = None
        self._managed: Any = None
        self._client: Any = None
        self._session: Any = None
        self._owned = False

    @property
    def on_kubernetes(self) -> bool:
        return self.namespace is not None

    def __enter__(self) -> ModuleType:
        import ray

        if self.on_kubernetes:
            self._enter_kubernetes(ray)
        elif ray.is_initialized():
            self.address = "existing"
        else:
            ray.init(
                num_cpus=max(1, math.ceil(self.workers * self.resources.cpus)),
                num_gpus=self.workers * self.resources.gpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                address="local",
            )
            self._owned = True
            self.address = "local"
        return ray

    def _enter_kubernetes(self, ray: Any) -> None:
        from mlbuild.remote.kuberay.cluster import head_address, managed_cluster
        from mlbuild.remote.kuberay.manifest import (
            ClusterSpec,
            HeadGroup,
            WorkerGroup,
            node_resources,
        )

        if not self.image:
            raise ValueError(f"RayCluster on Kubernetes needs an image pinned by digest (image= or ${ENV_IMAGE})")
        assert self.namespace is not None
        spec = ClusterSpec(
            build_id=f"step-{uuid.uuid4().hex[:12]}",
            image=self.image,
            ray_version=ray.__version__,
            namespace=self.namespace,
            head=HeadGroup(resources=node_resources(Resources())),
            workers=(WorkerGroup(group_name="workers", replicas=self.workers, resources=node_resources(self.resources)),),
        )
        self._managed = managed_cluster(
            spec, self.kube_context, self.namespace, ready_timeout_s=self.ready_timeout_s, api_client=self.api_client
        )
        handle = self._managed.__enter__()
        try:
            self.cluster_name = handle.name
            address = head_address(handle)
            if address.port_forward:
                raise RuntimeError(
                    f"the head of RayCluster {handle.name!r} is not reachable from here; run `{address.port_forward}`"
                )
            self.address = address.url
            if ray.is_initialized():
                # Already connected (a step running as a task of the build's own cluster): a
                # second, separate client connection, made the current one for this block.
                self._client = ray.init(address.url, allow_multiple=True)
                self._client.__enter__()
            else:
                from mlbuild.remote.ray_executor import RaySession

                self._session = RaySession(address.url)
        except BaseException:
            self._managed.__exit__(*sys.exc_info())
            self._managed = None
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import ray

        try:
            if self._client is not None:
                self._client.__exit__(None, None, None)
                self._client.disconnect()
                self._client = None
            elif self._session is not None:
                self._session.close()
                self._session = None
            elif self._owned:
                ray.shutdown()
                self._owned = False
        finally:
            managed, self._managed = self._managed, None
            if managed is not None:
                managed.__exit__(exc_type, exc, tb)
