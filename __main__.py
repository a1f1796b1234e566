"""`python -m mlbuild`."""

from mlbuild.engine.cli import main

raise SystemExit(main())
