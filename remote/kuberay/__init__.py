"""The KubeRay backend: a RayCluster on Kubernetes for a build, from the build's own image.

- :mod:`mlbuild.remote.kuberay.manifest` builds the ``RayCluster`` manifest (pure, no I/O);
- :mod:`mlbuild.remote.kuberay.cluster` creates, waits for, reaches and deletes it through the
  ``kubernetes`` client (imported only there, so the manifest side needs no Kubernetes client).

The tests validate manifests against KubeRay's CRD with ``tests/support/kuberay_schema.py``.

See ``docs/kuberay.md``.
"""

from mlbuild.remote.kuberay.manifest import (
    ClusterSpec,
    HeadGroup,
    HeadPorts,
    NodeResources,
    WorkerGroup,
    build_manifest,
    cluster_name,
)

__all__ = [
    "ClusterSpec",
    "HeadGroup",
    "HeadPorts",
    "NodeResources",
    "WorkerGroup",
    "build_manifest",
    "cluster_name",
]
