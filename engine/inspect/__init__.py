"""Inspection: lineage, why, diff, query, verify, reproduce, artifact diffs."""
