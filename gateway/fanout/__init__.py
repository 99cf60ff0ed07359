"""Live events between gateway processes: what one process publishes (a span stored, a
named event) reaches the ``GET /events`` listeners of every other process.

`relay` holds the interface (`Relay`: send, deliver, and which peers have listeners,
so a process whose peers have none decodes nothing for them); `unix` the workers of
one ``spanlab serve --workers`` on one machine (a Unix datagram socket each, in the
supervisor's run directory); `postgres` every process on one PostgreSQL database
(LISTEN/NOTIFY).

May import: `gateway.config`, `gateway.errors`, `gateway.metrics`. Never the rooms above.
"""
