"""The database: `sqlite` (connections, transactions, migrations from the top-level
`migrations/` folder, the span store), `experiments` (the experiment store on the
same connections), keyset `pagination` and the `sqlwhere` builder they share.

May import: `gateway.capture` (the span row), `gateway.config`, `gateway.errors`.
Never `proxy`, `writer`, `experiments`, `api`, `cli`.
"""
