"""Labels, workspace loading, code hashing, keys, planning, scheduling, the local executor, the CLI."""
