"""Evaluation: judging what experiments and apps produce.

Owns what a score *means* (the stored records are `gateway.store.evaluation`):
metric definitions and checking a value against one, feedback and scores with their
events and metrics, the built-in evaluators and the LLM judge (run after each matrix
cell and re-runnable over existing results), and the statistics that compare variants
(confidence intervals clustered by input, paired tests, the verdict in words).

May import: config, errors, metrics, http, capture, store, writer, proxy, experiments,
datasets (the judge calls through the proxy pipeline the way `gateway.experiments.runner`
does). The matrix engine in `gateway.experiments` does not import this room: the app
hands it a callback that evaluates each finished cell. Its routes live in `gateway.api`,
its commands in `gateway.cli`. Heavy libraries (scipy) are imported where they are used,
never when the gateway starts.

Feedback slice: `metrics` (a metric definition from an API body, checking a value
against it, the defaults of a metric made on first use) and `scoring` (`ScoringService`:
feedback, scores and metric definitions, with their events and Prometheus counts;
`ScoringService.record_scores` is the evaluators' way in).
Results: `statistics` (clustered CIs, paired tests, Holm, flips, stability, cost against
quality), `verdict` (the sentences), `results` (an experiment's run read into them).
Evaluators (slice 2): `cell` (the typed cell an evaluator reads), `evaluator_base`,
`evaluators` (the registry of built-in types), `evaluators_text`, `tool_calls`,
`rubrics`, `judge` (the LLM judge through the proxy pipeline), `recording`
(`record_scores`, the one writer of evaluator scores) and `service`
(`EvaluationService`: configuration, after each cell, re-runs).
"""
