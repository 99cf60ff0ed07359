"""The suite's one fake upstream: `server.MockUpstream` on loopback (OpenAI scenarios,
and any script: the Anthropic dialect, the experiments' deterministic upstream), and
`transport.script_transport`, the same scripts in process behind an httpx transport."""
