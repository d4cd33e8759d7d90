"""The local worker: one process that owns the GPU, keeps models warm and serves the protocol.

Modules: ``auth`` (token, origin, client ids), ``history`` (SQLite), ``hub`` (jobs, queue, event
rings), ``engine_runner`` (the GPU thread: Studio calls, saving results; torch is imported there),
``server`` (HTTP routes), ``app`` (start-up, worker.json, signals), ``commands`` (CLI).
Importing this package stays light: torch loads on the GPU thread only.
"""
