"""Scenarios run against every store: load, concurrency (and leak, security, faults).

``scenarios.core`` measures, ``scenarios.runner`` drives (see its docstring to add a
scenario), ``scenarios.workload`` reads workload files. Nothing here imports ``reports``.
"""
