"""HTTP plumbing with no knowledge of LLMs: the upstream client (`client`, and the
`upstream` interface the proxy calls it through), the server protocol under
`spanlab serve` (`server`), the Host/Origin/content-type guard in front of every
request (`guard`), and server-sent-event framing (`sse`).

May import: `gateway.errors`, `gateway.config`. Never `proxy`, `capture`, `store`,
`writer`, `experiments`, `api` or `cli`.
"""
