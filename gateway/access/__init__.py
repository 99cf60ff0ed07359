"""Access: who may do what on a gateway.

This room owns the gateway keys (random, shown once, stored hashed, with a prefix for
recognition, an optional expiry and a last-used time), the projects they may be bound
to, the scopes (``proxy``, ``read``, ``write``, ``admin``), the one table that gives
every route its scope (`gateway.access.routes`), the policy (when keys are required)
and the check in front of every request (`gateway.access.guard`). The check puts a
resolved `Principal` on the request's ASGI scope (``scope["spanlab.principal"]``) for
what comes after it (quotas, the audit log). Refused authentications are written to
the ``events`` table (type ``access.denied``) off the request path.

May import: config, errors, metrics, http, store.
"""
