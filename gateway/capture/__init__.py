"""What a call becomes as a record, without any I/O: the `span` (ids, assembly of a
stream into one response, finalizing usage and cost), `redaction` of secrets,
`pricing`, the OpenTelemetry GenAI attribute mapping (`otel`) and the row a span is
stored as (`span_table`).

May import: `gateway.config`, `gateway.errors`. Nothing else of the gateway: the
writer process imports this package, and it must start fast.
"""
