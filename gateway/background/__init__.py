"""The background process: where `spanlab serve` runs what is not a proxied call —
matrix cells and the evaluators that score them — so that it never shares the
proxy's event loop.

A matrix run started on the gateway is written to the database; the background
process (a whole gateway app without an HTTP server, at the kernel's idle CPU
priority) claims and runs its cells as any other process sharing the database would
(`gateway.experiments.matrix_shared`), and its spans, events and metrics reach the
gateway through the relay and a pipe. The kernel, not the event loop, then decides who
runs: a proxied call that wakes up takes the CPU from the matrix at once, and on a
machine with a core to spare the matrix runs there at full speed.

Modules: `lifeline` (a child dies with its parent), `process` (the gateway's side:
start, watch, restart, stop; and the child's: its main). May import `gateway.app`,
`gateway.config`, `gateway.fanout`, `gateway.metrics`.
"""
