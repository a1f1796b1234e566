"""Running: the build loop, scheduler, executors, runner, remote session, progress."""
