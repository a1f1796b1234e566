"""mlbuild: content-addressed builds of Python ML pipelines.

The public API is small: ``rule`` marks a step, ``target`` declares one in a ``BUILD.py``,
``Config`` is the base of step configs, ``File`` names a source file, ``Resources`` states what
a step needs to run, ``RayCluster`` opens a Ray cluster inside a step. ``RayCluster``,
``register_codec`` and ``trust_types`` are imported on first use, so ``import mlbuild`` stays light. ``register_codec`` stores a team's own types without
pickle (``mlbuild.testing.check_codec`` tests one), ``trust_types`` lets scikit-learn models
holding a team's classes load from the cache. ``params`` reads a target's config from a params
file (YAML or TOML), one section per target.
"""

from typing import Any

from mlbuild.rules.config import Config
from mlbuild.rules.params import params
from mlbuild.rules.rule import Resources, rule
from mlbuild.rules.target import File, target

__version__ = "0.1.0"

__all__ = [
    "Config",
    "File",
    "RayCluster",
    "Resources",
    "params",
    "register_codec",
    "rule",
    "target",
    "trust_types",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: `import mlbuild` (every BUILD.py, every no-op build) stays light.
    if name == "RayCluster":
        from mlbuild.remote.ray_cluster import RayCluster

        return RayCluster
    if name == "register_codec":
        from mlbuild.rules.codecs.registry import register_codec

        return register_codec
    if name == "trust_types":
        from mlbuild.rules.codecs.estimator import trust_types

        return trust_types
    raise AttributeError(f"module 'mlbuild' has no attribute {name!r}")
