"""The database and the stores on it, by composition: `database` (`Database`:
connections, transactions, migrations; `SQLiteDatabase`), `migrations` (the loader of
the top-level `migrations/<dialect>/` files), `spans` (the `SpanStore` interface) with
its SQLite implementation in `sqlite`, `experiments` (the `ExperimentStore` interface
and `SqlExperimentStore`), `datasets` (the `DatasetStore` interface: versioned
items) with its SQLite implementation in `sqlite_datasets`, `evaluation` (the
`EvaluationStore` interface: metric definitions, scores, feedback, evaluators) with
`sqlite_evaluation`, `stores` (the `Stores`
record the app holds), keyset `pagination` and the `sqlwhere` builder they share.

May import: `gateway.capture` (the span row), `gateway.config`, `gateway.errors`.
Never `proxy`, `writer`, `experiments`, `datasets`, `api`, `cli`.
"""
