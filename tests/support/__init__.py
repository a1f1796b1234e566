"""Helpers the tests share: ``workspace`` writes a workspace, ``cli`` runs ``mlbuild`` in this
process (the default) or in a child process (where the process itself is under test).

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so a test imports ``from support.cli
import mlbuild``.
"""
