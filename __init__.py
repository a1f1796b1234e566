"""mlbuild: content-addressed builds of Python ML pipelines.

The public API is small: ``rule`` marks a step, ``target`` declares one in a ``BUILD.py``,
``Config`` is the base of step configs, ``File`` names a source file, ``Resources`` states what
a step needs to run.
"""

from mlbuild.rules.config import Config
from mlbuild.rules.rule import Resources, rule
from mlbuild.rules.target import File, target

__version__ = "0.1.0"

__all__ = ["Config", "File", "Resources", "rule", "target", "__version__"]
