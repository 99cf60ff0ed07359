"""The `spanlab` command line: `main` (the click group, `serve`, `migrate`, spans,
`prune`, `replay`, `config`), `experiments` (the experiment commands), `client` (the
HTTP API, remote or in-process, that the commands speak) and `server` (uvicorn's
server with what `spanlab serve` closes first at shutdown).

May import anything in the gateway; nothing imports it but `gateway.__main__`.
"""
