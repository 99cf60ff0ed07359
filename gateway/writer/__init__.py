"""The span writer, off the request path: `span_writer` queues spans (back-pressure
in spans and bytes) and hands them to the writer `process`, which finalizes,
redacts and commits them; `spill` saves what a shutdown could not wait for and
stores it at the next start. One writer per database.

May import: `gateway.capture`, `gateway.store`, `gateway.config`, `gateway.errors`,
`gateway.metrics`. Never `proxy`, `experiments`, `api`, `cli`.
"""
