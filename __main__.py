"""`python -m mlbuild`."""

from mlbuild.engine.cli import console_main

raise SystemExit(console_main())
