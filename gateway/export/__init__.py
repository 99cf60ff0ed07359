"""Export: stored spans sent on to the team's own tracing backend over OTLP.

`otlp` owns the exporter (a bounded queue and a thread, the OpenTelemetry SDK's
OTLP/HTTP exporter, the counts of spans exported, dropped and failed) and the settings'
reading (`export_config`); `process` runs it in a process of its own beside the writer
(`ExportPipe`: the writer's side, a bounded queue and a pipe); `genai` maps a committed
span row to OpenTelemetry GenAI semantic-convention attributes. The writer
(`gateway.writer`) feeds it committed rows, already redacted, after each transaction:
never the proxy's request path.

May import: `gateway.capture`, `gateway.config`, `gateway.errors`. The OpenTelemetry
SDK (the ``otlp`` extra) only inside the export thread.
"""
