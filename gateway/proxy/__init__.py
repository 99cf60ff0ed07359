"""The proxy: one call from a client to a provider and back. `pipeline` routes,
rewrites and exchanges a call and builds its span; `endpoint` is its ASGI face;
`operations` says what the proxy serves (paths, hop-by-hop headers, `ProxyRequest`);
`sink` is where a response goes (`ResponseSink`, and the in-process sinks experiment
runs and the merged model list use); `relay` carries a response's events (capture
limit, error events); `providers/` routes model names and addresses each kind of
upstream (OpenAI, Anthropic and the translation between them, the merged model list).

May import: `gateway.http`, `gateway.capture`, `gateway.writer` (to submit spans),
`gateway.config`, `gateway.errors`, `gateway.metrics`. Never `experiments`, `api`, `cli`.
"""
