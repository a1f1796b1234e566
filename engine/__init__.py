"""The engine: plan/ (loading), keys/ (keying), run/ (building), inspect/ (explaining), the CLI.

Its API is ``build(BuildSettings(...)) -> BuildResult``. ``build`` and ``BuildResult`` are
imported on first use, so ``import mlbuild.engine`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlbuild.engine.run.settings import BuildSettings, RemoteSettings

if TYPE_CHECKING:
    from mlbuild.engine.run.api import build
    from mlbuild.engine.run.build import BuildResult

__all__ = ["BuildResult", "BuildSettings", "RemoteSettings", "build"]


def __getattr__(name: str) -> Any:
    if name == "build":
        from mlbuild.engine.run.api import build

        return build
    if name == "BuildResult":
        from mlbuild.engine.run.build import BuildResult

        return BuildResult
    raise AttributeError(f"module 'mlbuild.engine' has no attribute {name!r}")
