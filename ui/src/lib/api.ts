// The one way the UI talks to the gateway: same-origin fetch, JSON in and out. Two typed
// failures: NetworkError when the gateway cannot be reached at all (stopped, restarting,
// network down) and ApiError when it answered with an error, in its
// {"error": {"message","type","code","param"}} shape. Every answer and every network
// failure is also reported to reachability listeners (the live badge listens).

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string | null = null,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The route itself does not exist (as opposed to a missing record). */
  get noRoute(): boolean {
    return this.status === 404 && this.message.startsWith("No route");
  }
}

/** The gateway could not be reached: no HTTP answer at all. */
export class NetworkError extends Error {
  constructor(
    readonly path: string,
    cause?: unknown,
  ) {
    super("The gateway is unreachable", { cause });
    this.name = "NetworkError";
  }
}

export function isNetworkError(error: unknown): error is NetworkError {
  return error instanceof NetworkError;
}

type ReachabilityListener = (reachable: boolean) => void;
const reachability = new Set<ReachabilityListener>();

/** Be told, after every request, whether the gateway answered (true) or could not be
 * reached (false). Returns the unsubscribe function. */
export function onReachability(listener: ReachabilityListener): () => void {
  reachability.add(listener);
  return () => {
    reachability.delete(listener);
  };
}

function report(reachable: boolean): void {
  for (const listener of reachability) listener(reachable);
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

async function errorFrom(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  let type: string | null = null;
  let code: string | null = null;
  let param: string | null = null;
  try {
    const body = (await response.json()) as { error?: unknown };
    const error = body.error;
    if (error !== null && typeof error === "object") {
      const e = error as Record<string, unknown>;
      message = text(e.message) ?? message;
      type = text(e.type);
      code = e.code === null || e.code === undefined ? null : String(e.code);
      param = text(e.param);
    } else if (typeof error === "string") {
      message = error;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(message, response.status, type, code, param);
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.body !== undefined && !headers.has("content-type")) {
    headers.set("content-type", "application/json");
  }
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (err) {
    // an abort is the caller's own doing, not a sign the gateway is down
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    report(false);
    throw new NetworkError(path, err);
  }
  report(true);
  // A 401: the session may have ended; the access gate asks the gateway again.
  if (response.status === 401) window.dispatchEvent(new Event("spanlab:unauthorized"));
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await request(path, init);
  return (await response.json()) as T;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await request(path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** SWR's fetcher. */
export const fetcher = <T,>(path: string): Promise<T> => getJson<T>(path);

/** Build a query string from the non-empty entries. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
