"""Datasets: named, versioned sets of inputs for experiments to run over.

Owns the work on them: `service` (`DatasetService`: what the API does, each edit one
new version), `items` (an item as a client writes it: validation, aliases,
redaction), `from_spans` (captured calls as items: request, tools and expected
output), `transfer` (JSONL and CSV, read whole or not at all). Storage is
`gateway.store.datasets` and `gateway.store.sqlite_datasets`.

May import: `gateway.store`, `gateway.capture`, `gateway.config`, `gateway.errors`.
Never `proxy`, `writer`, `experiments` (which will build on datasets), `api`, `cli`.
"""
