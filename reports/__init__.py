"""Decision matrix, cost model and renderers, computed from a run folder's saved rows only.

Nothing here imports ``backends`` or ``scenarios``: a verdict is recomputed from
``results.csv`` / ``results.parquet`` and ``run.json`` on any machine, without services.
Entry point for the run command: :func:`reports.render.render_run`.
"""
