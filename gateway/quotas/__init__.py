"""Quotas: limits per gateway key and per project, and the usage counted against them.

This room owns the limits (requests per minute, tokens per UTC day, cost in USD per
UTC day and per UTC month; columns of ``access_keys`` and ``projects``, migration
``0015_quotas.sql``), the usage counters (table ``quota_usage``), the admission of a
call (`QuotaService.admit`: a dict lookup and integer compares, no I/O, on the proxy
path) and the charging of a finished call's tokens and cost (from its span, when the
writer has stored it: off the path). A refusal is a `gateway.errors.QuotaExceeded`
(429, ``Retry-After``), audited as a ``quota.exceeded`` event and counted in
``spanlab_quota_refusals_total{limit}``.

Counts are kept in memory and added to the store in batches (an upsert that adds, so
several processes sharing a store add up); the current windows are read back at start
and after every batch, so limits hold across restarts.

May import: config, errors, metrics, capture, store, access.
"""
