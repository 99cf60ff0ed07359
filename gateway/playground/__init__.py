"""The playground: ad-hoc calls to one or several models at once, side by side,
multi-turn, kept as sessions.

Owns: `requests` (the ``POST /playground/complete`` body: the seed's camelCase fields
and ours, validated), `service` (`PlaygroundService`: the calls through the proxy
pipeline, sessions, the ``playground.completion`` event, metrics, "save as
experiment").

May import: config, errors, metrics, http, capture, store, writer, proxy, experiments
(it calls the pipeline the way experiment runs do, through
`gateway.experiments.runner`, and saves an answer as an experiment through
`gateway.experiments.service.ExperimentService`). Its routes are in
`gateway.api.playground`, its command in `gateway.cli.playground`.
"""
