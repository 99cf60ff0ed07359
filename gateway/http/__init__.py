"""HTTP plumbing with no knowledge of LLMs: the upstream client (`client`, the
`upstream` interface and error kinds the proxy calls it through, and `httpx_transport`
for ``upstream_client = "httpx"``), the server protocol under
`spanlab serve` (`server`), the Host/Origin/content-type guard in front of every
request (`guard`), and server-sent-event framing (`sse`).

May import: `gateway.errors`, `gateway.config`. Never `proxy`, `capture`, `store`,
`writer`, `experiments`, `api` or `cli`.
"""
