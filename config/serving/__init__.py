"""How Switchyard is served over ASGI: request limits, the sync-view threads, streaming.

`config.asgi` composes these around Django's ASGI handler; `scripts/run.sh` starts the
server (granian) with the connection-level limits (header timeout, sizes, workers).
"""
