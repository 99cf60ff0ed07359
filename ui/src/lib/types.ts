// Shapes of the gateway's JSON (see BRIEF: span JSON and the experiments contract).

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface Usage {
  prompt_tokens: number | null;
  completion_tokens: number | null;
  total_tokens: number | null;
  cached_tokens: number | null;
}

export type SpanStatus = "ok" | "error" | "client_aborted" | "interrupted";

export interface SpanSummary {
  span_id: string;
  trace_id: string;
  parent_span_id: string | null;
  project_id: string | null;
  thread_id: string | null;
  run_id: string | null;
  label: string | null;
  /** `x-tags: k=v&k2=v2`, as the API gives it: an object of strings. */
  tags: Record<string, string> | null;
  operation: string | null;
  method: string | null;
  path: string | null;
  provider: string | null;
  request_model: string | null;
  response_model: string | null;
  stream: boolean | null;
  status: SpanStatus;
  http_status: number | null;
  start_us: number;
  end_us: number | null;
  start_time: string;
  end_time: string | null;
  duration_ms: number | null;
  ttft_ms: number | null;
  input_preview: string | null;
  output_text: string | null;
  finish_reason: string | null;
  usage: Usage | null;
  cost_usd: number | null;
  error: JsonValue;
  attributes: JsonValue;
  links: JsonValue;
  /** Who made the call: `app`, or `experiment` for a replay (open text; older gateways: absent). */
  origin?: string | null;
}

export interface SpanDetail extends SpanSummary {
  request: JsonValue;
  request_headers: Record<string, string> | null;
  query: JsonValue;
  response: JsonValue;
  response_headers: Record<string, string> | null;
  otel_attributes: Record<string, JsonValue> | null;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface ThreadSummary {
  thread_id: string;
  calls: number;
  errors: number | null;
  total_tokens: number | null;
  cost_usd: number | null;
  first_activity: string | null;
  last_activity: string | null;
  models: string[];
  project_id: string | null;
  /** Replays in the thread (origin other than app), not counted in the totals above. */
  replays?: number;
}

export type ExperimentStatus = "draft" | "running" | "completed" | "failed";

export interface Experiment {
  id: string;
  name: string;
  description: string | null;
  original_span_id: string;
  original_trace_id: string;
  original_request: JsonObject;
  modified_request: JsonObject;
  headers: Record<string, string> | null;
  prompt_variables: Record<string, string> | null;
  model_parameters: JsonObject | null;
  result_span_id: string | null;
  result_trace_id: string | null;
  status: ExperimentStatus;
  project_id: string | null;
  created_at: string | null;
  updated_at: string | null;
  tags: string[] | null;
  favorite: boolean | null;
  error: JsonValue;
  operation?: string;
  /** With `GET /experiments?include=latest_run`. */
  latest_run?: LatestRun | null;
}

export interface MetricDelta {
  original: number | null;
  result: number | null;
  delta: number | null;
}

export interface LatestRun {
  id: string;
  status: string;
  stream: boolean;
  started_at: string | null;
  ended_at: string | null;
  result_span_id: string | null;
  error: JsonValue;
  latency_ms: MetricDelta;
  cost_usd: MetricDelta;
  total_tokens: MetricDelta;
}

export interface ExperimentRun {
  id: string;
  experiment_id: string;
  status: string;
  request: JsonObject | null;
  stream?: boolean;
  result_span_id: string | null;
  result_trace_id: string | null;
  output_text: string | null;
  error: JsonValue;
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
}

// --- Variants x inputs: the matrix of an experiment (docs/api.md "Variants and the matrix")

export type ExperimentKind = "replay" | "matrix";

export interface Variant {
  id: string;
  experiment_id: string;
  name: string;
  description: string | null;
  system_prompt: string | null;
  config: JsonObject | null;
  kind: "template" | "override";
  position: number;
}

export interface MatrixInput {
  id: string;
  experiment_id: string;
  key: string;
  content: string | null;
  variables: JsonObject | null;
  request: JsonObject | null;
  expected_output: JsonValue;
  metadata: JsonObject | null;
  source_span_id: string | null;
  dataset_id: string | null;
  dataset_version: number | null;
}

export interface MatrixRun {
  id: string;
  experiment_id: string;
  status: string;
  variant_ids: string[];
  input_ids: string[];
  repetitions: number;
  cells: number;
  created_at: string;
}

/** A cell: an experiment run of a matrix run (variant x input x repetition). */
export interface MatrixCell extends ExperimentRun {
  matrix_run_id: string | null;
  variant_id: string | null;
  input_id: string | null;
  repetition: number | null;
  cost_usd: number | null;
  ttft_ms: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  retries: number | null;
  /** Snapshot of what the cell ran: variant_name, input_key, model, provider... */
  config: JsonObject | null;
  /** The tool calls it was answered with, in the OpenAI chat shape (migration 0009). */
  tool_calls?: JsonValue;
}

export interface MatrixExperimentDetail extends Experiment {
  kind?: ExperimentKind;
  variants?: Variant[];
  inputs?: MatrixInput[];
  matrix_runs?: MatrixRun[];
  runs?: MatrixCell[];
}

export interface MatrixProgress {
  run_id: string;
  status: string;
  total: number;
  done: number;
  pending: number;
  running: number;
  completed: number;
  failed: number;
  cancelled: number;
  interrupted: number;
  cost_usd: number | null;
  retries: number;
}

export interface VariantEstimate {
  variant_id: string;
  name: string;
  model: string | null;
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number | null;
  unpriced_calls: number;
}

export interface MatrixEstimate {
  calls: number;
  variants: number;
  inputs: number;
  repetitions: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number | null;
  unpriced_calls: number;
  per_variant: VariantEstimate[];
  basis: { captured: string[]; approximated: string[]; approximation: string; captured_usage: string };
}

export interface Dataset {
  id: string;
  name: string;
  version: number;
  item_count: number;
}
