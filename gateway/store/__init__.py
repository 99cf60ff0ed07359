"""The database and the stores on it, by composition: `database` (`Database`:
connections, transactions, migrations; `SQLiteDatabase`), `migrations` (the loader of
the top-level `migrations/<dialect>/` files), `spans` (the `SpanStore` interface) with
its SQLite implementation in `sqlite`, `experiments` (the `ExperimentStore` interface
and `SqlExperimentStore`), `datasets` (the `DatasetStore` interface: versioned
items) with its SQLite implementation in `sqlite_datasets`, `evaluation` (the
`EvaluationStore` interface: metric definitions, scores, feedback, evaluators) with
`sqlite_evaluation`, `stores` (the `Stores`
record the app holds, `stores_for` a SQLite path or a PostgreSQL URL), keyset
`pagination` and the `sqlwhere` builder they share.

Both dialects under one store code: `sql` (the Protocols a store needs of a database,
the one `IntegrityError`, `savepoint`), `dialect` (the SQL fragments that differ),
`postgres` (`PostgresDatabase` on an asyncpg pool), `sql_spans` (the span store's
queries for both) with `postgres_spans` (`PostgresSpanStore`: COPY inserts).

May import: `gateway.capture` (the span row), `gateway.config`, `gateway.errors`.
Never `proxy`, `writer`, `experiments`, `datasets`, `api`, `cli`.
"""
