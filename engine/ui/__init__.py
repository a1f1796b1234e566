"""The local web UI (``mlbuild ui``): builds, their DAGs, each step's inputs, outputs, code,
config, environment, logs, lineage and ``why``, with deep links.

``server.create_app`` is the app (it imports Flask); ``state`` is what builds read to link a
failed step, and imports nothing heavy.
"""
