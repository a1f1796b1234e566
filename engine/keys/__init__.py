"""Keying: static code digests, environments, action keys and specs."""
