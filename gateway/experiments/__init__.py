"""Replay experiments: the `service` (create, run, compare, keep history), the
replayed request built from a saved one (`requests`), the `runner` that sends it
through the proxy pipeline, import/export (`transfer`) and output `diffing`.

May import: `gateway.proxy`, `gateway.capture`, `gateway.store`, `gateway.writer`,
`gateway.http` (SSE), `gateway.config`, `gateway.errors`. Never `api` or `cli`.
"""
