"""Property-based fuzzing of the management API (issue 9, item 8).

Every route of `gateway.app.management_routes` (and the experiments routes) gets
bodies drawn from the documented shapes, the same shapes with one field wrong, and
arbitrary JSON; list routes get arbitrary query parameters (cursors of every type, long
search texts, huge numbers). In-process, through `httpx.ASGITransport`, with the fake
upstream answering the runs. The properties:

* no answer is a 5xx;
* every 4xx has the one error shape ``{"error": {"message", "type", "code", "param"}}``;
* after every accepted write, what was stored re-validates: the experiment, its runs
  and history read back, and its export imports again (``on_conflict=copy``) through
  the same validators a client's import meets.

Bounded for CI: a fixed number of examples per route group (``derandomize``: the same
inputs on every run), no deadline, no example database.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Gateway
from tests.experiments_helpers import CHAT, capture

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    # One gateway (and its database) serves all the examples of a test, on purpose.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
# Stands for the id of a span captured before the examples run.
SPAN = "$span"
ERROR_KEYS = {"message", "type", "code", "param"}

# --- strategies -----------------------------------------------------------------------

BIG_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1])
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | BIG_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


class Raw(str):
    """JSON text put into a body as is (nesting deeper than the encoder goes)."""


def cursor_of(text: str) -> str:
    """What a cursor looks like (unpadded url-safe base64), whatever JSON it carries."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def deep_text(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


DEEP = st.builds(
    Raw, st.builds(deep_text, st.integers(200, 1100), st.sampled_from(["list", "obj"]))
)
TEMPLATES = st.sampled_from(
    ["Be {{tone}}.", "{{#items}}{{.}}{{/items}}", "{{", "{{/x}}", "{{{raw}}}", "{{> part}}",
     "{{=<% %>=}}", "{{tone", "}}", "{{^none}}no{{/none}}", "{{#a}}{{/b}}", "plain"]
)  # fmt: skip
STAMP = "2025-01-01T00:00:00.000000Z"
# A field: (what the documentation says it is, what a client might send instead).
Fields = dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]


@st.composite
def shaped(
    draw: st.DrawFn, fields: Fields, required: tuple[str, ...] = (), wrong: int = 75
) -> dict[str, Any]:
    """A body of ``fields``: the required ones and some others, valid; then, ``wrong``
    times in a hundred, one of them replaced by a wrong value (or any JSON)."""
    body = {
        name: draw(valid)
        for name, (valid, _) in fields.items()
        if name in required or draw(st.booleans())
    }
    if draw(st.integers(0, 99)) < wrong:
        name = draw(st.sampled_from(sorted(fields)))
        body[name] = draw(fields[name][1] | JSON)
    return body


MESSAGE = shaped(
    {
        "role": (st.sampled_from(["user", "system", "assistant"]), st.text(max_size=5)),
        "content": (TEMPLATES | st.text(max_size=20), DEEP | BIG_INTS),
    },
    required=("role", "content"),
    wrong=10,
)
REQUEST = shaped(
    {
        "model": (
            st.sampled_from(["gpt-4o-mini", "openai/gpt-4o-mini", "local/x", "claude-3-5-haiku"]),
            st.sampled_from(["", "nowhere/x", "anthropic/claude-3-5-haiku"]),
        ),
        "messages": (st.lists(MESSAGE, min_size=1, max_size=3), st.just([]) | DEEP),
        "temperature": (st.floats(0, 2), BIG_INTS),
        "max_tokens": (st.integers(1, 100), BIG_INTS),
        "stream": (st.booleans(), st.text(max_size=3)),
        "api_key": (st.text(min_size=8, max_size=12), BIG_INTS),
        "tools": (st.lists(JSON, max_size=2), DEEP),
    },
    required=("model", "messages"),
    wrong=25,
)
REQUEST_FIELD = REQUEST | REQUEST.map(json.dumps)
WRONG_REQUEST = DEEP | st.builds(Raw, DEEP).map(
    lambda raw: json.dumps({"model": "m", "x": 1})[:-1] + ', "deep": ' + raw + "}"
)
HEADERS = st.dictionaries(
    st.sampled_from(["openai-beta", "x-custom", "anthropic-beta"]), TEMPLATES, max_size=2
)
BAD_HEADERS = st.dictionaries(
    st.sampled_from(["Authorization", "bad header", "host", "x-api-key"]),
    st.text(max_size=5),
    min_size=1,
    max_size=2,
)
CREATE_FIELDS: Fields = {
    "name": (st.text(min_size=1, max_size=30), st.text(min_size=501, max_size=520)),
    "description": (st.text(max_size=30), st.just("")),
    "original_request": (REQUEST_FIELD, WRONG_REQUEST),
    "original_trace_id": (st.just("0af7651916cd43dd8448eb211c80319c"), st.just("")),
    "modified_request": (REQUEST_FIELD, WRONG_REQUEST),
    "headers": (HEADERS, BAD_HEADERS),
    "prompt_variables": (
        st.dictionaries(st.sampled_from(["tone", "items", "raw", "a"]), LEAVES, max_size=3),
        DEEP | st.dictionaries(st.text(max_size=3), BIG_INTS, min_size=1, max_size=2),
    ),
    "model_parameters": (
        st.dictionaries(
            st.sampled_from(["temperature", "max_tokens", "stream"]), st.integers(0, 2), max_size=2
        ),
        st.dictionaries(
            st.sampled_from(["model", "messages", "max_tokens", "x"]),
            BIG_INTS | JSON | DEEP,
            min_size=1,
            max_size=2,
        ),
    ),
    "project_id": (
        st.sampled_from(["proj-a", "default"]),
        st.sampled_from(["", " "]) | st.text(min_size=257, max_size=260),
    ),
    "tags": (
        st.lists(st.text(min_size=1, max_size=10), max_size=3),
        st.lists(st.text(min_size=65, max_size=70), min_size=1, max_size=1),
    ),
    "favorite": (st.booleans(), st.sampled_from([0, 1, "true"])),
    "operation": (
        st.sampled_from(["chat", "messages", "responses", "completions", "embeddings"]),
        st.sampled_from(["models", ""]),
    ),
    "status": (st.just("draft"), st.sampled_from(["running", "completed"])),
}
CREATE_BODY = (
    shaped(
        {
            **{
                k: v
                for k, v in CREATE_FIELDS.items()
                if k not in ("original_request", "original_trace_id")
            },
            "original_span_id": (st.just(SPAN), st.sampled_from(["", "missing-span"])),
        },
        required=("original_span_id",),
    )
    | shaped(
        {**CREATE_FIELDS, "original_span_id": (st.text(min_size=1, max_size=16), st.just(""))},
        required=("original_span_id", "original_request", "original_trace_id"),
    )
    | JSON
    | DEEP
)
DUPLICATE_BODY = (
    st.none()
    | shaped({k: CREATE_FIELDS[k] for k in ("name", "description", "tags", "project_id")})
    | JSON
    | DEEP
)
UPDATE_BODY = (
    shaped(
        {
            **{
                k: CREATE_FIELDS[k]
                for k in (
                    "name",
                    "description",
                    "modified_request",
                    "headers",
                    "prompt_variables",
                    "model_parameters",
                    "project_id",
                    "tags",
                    "favorite",
                )
            },
            "status": (
                st.sampled_from(["draft", "completed", "failed"]),
                st.sampled_from(["running", "x"]),
            ),
            "result_span_id": (st.just(SPAN), st.text(min_size=257, max_size=260)),
            "result_trace_id": (st.text(max_size=10), BIG_INTS),
            "version": (st.integers(1, 3), BIG_INTS | st.integers(-3, 0)),
            "id": (st.just("$exp"), st.text(max_size=5)),
            "created_at": (st.just(STAMP), st.text(max_size=5)),
        }
    )
    | JSON
    | DEEP
)
RUN = shaped(
    {
        "id": (st.sampled_from(["run-1", "run-2"]), st.sampled_from(["", "bad id"])),
        "status": (st.sampled_from(["completed", "failed", "running"]), st.just("x")),
        "request": (REQUEST_FIELD, WRONG_REQUEST),
        "started_at": (st.just(STAMP), st.none()),
        "duration_ms": (st.floats(0, 1e6), BIG_INTS | st.integers(-(2**70), 2**70)),
        "error": (
            st.none() | st.fixed_dictionaries({"message": st.text(max_size=10)}),
            st.text(max_size=3),
        ),
        "headers": (HEADERS, BAD_HEADERS),
        "output_text": (st.text(max_size=20), BIG_INTS),
        "ended_at": (st.just(STAMP), BIG_INTS),
        "stream": (st.booleans(), BIG_INTS),
        "result_span_id": (st.text(max_size=10), BIG_INTS),
    },
    required=("id", "status", "request", "started_at"),
    wrong=30,
)
HISTORY = shaped(
    {
        "version": (st.integers(1, 3), BIG_INTS | st.integers(-3, 0)),
        "action": (st.sampled_from(["created", "updated"]), BIG_INTS),
        "at": (st.just(STAMP), BIG_INTS),
        "snapshot": (st.fixed_dictionaries({"name": st.text(max_size=5)}), DEEP),
        "run_id": (st.sampled_from(["run-1", None]), st.lists(st.text(max_size=3), max_size=2)),
        "changes": (st.none() | st.fixed_dictionaries({"name": st.text(max_size=5)}), DEEP),
    },
    required=("version", "action", "at", "snapshot"),
    wrong=30,
)
IMPORT_EXPERIMENT = shaped(
    {
        **CREATE_FIELDS,
        "original_span_id": (st.just("span-x"), st.just("")),
        "id": (st.sampled_from(["imp-1", "imp-2"]), st.sampled_from(["export", "bad id", ""])),
        "version": (st.integers(1, 4), BIG_INTS | st.integers(-3, 0)),
        "status": (st.sampled_from(["draft", "completed", "failed", "running"]), st.just("x")),
        "error": (
            st.none() | st.fixed_dictionaries({"message": st.text(max_size=5)}),
            st.text(max_size=3),
        ),
        "created_at": (st.just(STAMP), BIG_INTS),
        "runs": (
            st.lists(RUN, max_size=2),
            st.integers()
            | st.text(max_size=3)
            | st.dictionaries(st.text(max_size=3), JSON, max_size=2),
        ),
        "history": (
            st.lists(HISTORY, max_size=2),
            st.integers()
            | st.text(max_size=3)
            | st.dictionaries(st.text(max_size=3), JSON, max_size=2),
        ),
    },
    required=("original_span_id", "original_trace_id", "original_request"),
    wrong=50,
)
IMPORT_BODY = (
    shaped(
        {
            "format": (st.just("spanlab.experiments"), st.text(max_size=5)),
            "version": (st.just(1), BIG_INTS | st.just(2)),
            "experiments": (st.lists(IMPORT_EXPERIMENT, max_size=2), st.text(max_size=3)),
        },
        required=("experiments",),
    )
    | st.lists(IMPORT_EXPERIMENT, max_size=2)
    | IMPORT_EXPERIMENT
    | JSON
    | DEEP
)

# Query parameters: a cursor of any type (garbage, or valid base64 of the wrong JSON),
# long search texts (LIKE's pattern limit), huge and non-numeric numbers.
CONTAINER = st.lists(LEAVES, max_size=2) | st.dictionaries(st.text(max_size=3), LEAVES, max_size=2)
CURSOR = (
    st.builds(
        lambda key: cursor_of(json.dumps(key)), st.lists(LEAVES | CONTAINER, min_size=2, max_size=2)
    )
    | st.text(max_size=20)
    | st.builds(lambda key: cursor_of(json.dumps(key)), st.lists(JSON, max_size=3))
    | st.builds(lambda text: cursor_of(text), st.text(max_size=10))
    | st.integers().map(str)
)
# Up to what a URL can carry (httpx refuses one past 64 KiB, percent-encoded).
LONG_TEXT = st.sampled_from(["a", "%", "_", "\\", "é"]).flatmap(
    lambda ch: st.integers(0, 60_000 // len(quote(ch))).map(lambda n: ch * n)
)
NUMBER = (
    st.integers(-5, 2000).map(str)
    | BIG_INTS.map(str)
    | st.sampled_from(["1e30", "inf", "nan", "-0", "x"])
)
TIME = NUMBER | st.sampled_from(
    ["2025-01-01T00:00:00Z", "2025-01-01", "9999-12-31T23:59:59+14:00", "Z"]
)
ANY_VALUE = st.text(max_size=20) | LONG_TEXT | CURSOR | NUMBER
PARAMS: dict[str, st.SearchStrategy[str]] = {
    "cursor": CURSOR,
    "q": LONG_TEXT | st.text(max_size=20),
    "limit": NUMBER,
    "offset": NUMBER,
    "since": TIME,
    "until": TIME,
    "status": st.sampled_from(["ok", "error", "draft", "x"]),
    "group_by": st.sampled_from(
        ["model", "provider", "project", "thread", "label", "operation", "status", "x", ""]
    )
    | st.sampled_from(["total", "minute", "hour", "day"]),
    "favorite": st.sampled_from(["true", "false", "x"]),
    "run": st.text(max_size=10),
    "ids": st.lists(st.sampled_from(["$exp", "x", ""]), max_size=3).map(",".join),
    "origin": st.sampled_from(["app", "experiment", "app,experiment", ",", "X"])
    | st.text(max_size=40),
    "exclude_origin": st.sampled_from(["experiment", "app,,x"]) | st.text(max_size=40),
}
OTHER_PARAMS = [
    "project",
    "thread",
    "trace",
    "model",
    "provider",
    "label",
    "operation",
    "tag",
    "favourite",
    "span",
    "stream",
]
QUERY = st.lists(
    st.sampled_from(sorted(PARAMS)).flatmap(lambda name: st.tuples(st.just(name), PARAMS[name]))
    | st.tuples(st.sampled_from(OTHER_PARAMS), ANY_VALUE),
    max_size=4,
)
READ_PATHS = [
    "/spans", "/spans/facets", "/spans/{id}", "/traces/{id}", "/threads", "/stats", "/healthz",
    "/metrics",
    "/experiments", "/experiments/export", "/experiments/by-span/{id}", "/experiments/{id}",
    "/experiments/{id}/runs", "/experiments/{id}/runs/{id}", "/experiments/{id}/compare",
    "/experiments/{id}/export", "/experiments/{id}/history",
]  # fmt: skip
PATH_ID = st.sampled_from([SPAN, "$exp"]) | st.text(min_size=1, max_size=20)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])


# --- helpers ---------------------------------------------------------------------------


def encode(value: Any) -> bytes:
    """A body as JSON bytes; `Raw` parts go in as they are (the encoder cannot nest them),
    integers past 64 bits too (a client's JSON may carry any)."""
    raws: dict[str, str] = {}

    def prepare(item: Any) -> Any:
        if isinstance(item, Raw):
            marker = f"__raw{len(raws)}__"
            raws[marker] = str(item)
            return marker
        if isinstance(item, dict):
            return {k: prepare(v) for k, v in item.items()}
        if isinstance(item, list):
            return [prepare(v) for v in item]
        return item

    text = json.dumps(prepare(value))
    for marker, raw in raws.items():
        text = text.replace(f'"{marker}"', raw)
    return text.encode()


def fits_in_url(query: list[tuple[str, str]]) -> bool:
    """Whether httpx takes a URL with ``query`` (it refuses one past 64 KiB)."""
    return len(urlencode(query)) < 64_000


def substitute(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value in ids:
        return ids[value]
    if isinstance(value, dict) and not isinstance(value, Raw):
        return {k: substitute(v, ids) for k, v in value.items()}
    return value


class Fuzz:
    """The gateway under test, a captured span, and the checks every answer passes."""

    def __init__(self, gateway: Gateway, span: dict[str, Any]) -> None:
        self.gateway = gateway
        self.ids = {SPAN: span["span_id"]}
        self.span = span

    @property
    def client(self) -> httpx.AsyncClient:
        return self.gateway.client

    async def send(
        self, method: str, path: str, body: Any = None, params: Any = None
    ) -> httpx.Response:
        content = None if body is None else encode(substitute(body, self.ids))
        try:
            response = await self.client.request(
                method,
                path,
                content=content,
                params=params,
                headers={"content-type": "application/json"} if content is not None else None,
            )
        except Exception as exc:
            # In process the app's exception is re-raised here (over a socket: a 500).
            response = httpx.Response(500, text=f"{type(exc).__name__}: {exc}")
        self.check(response, f"{method} {path}")
        return response

    @staticmethod
    def check(response: httpx.Response, what: str) -> None:
        assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:500]}"
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"}, f"{what}: {body}"
            assert set(body["error"]) == ERROR_KEYS, f"{what}: {body}"
            assert isinstance(body["error"]["message"], str) and body["error"]["message"]
            assert isinstance(body["error"]["type"], str)

    async def experiment(self) -> str:
        """An experiment to edit (made once per test, from the captured span)."""
        if "$exp" not in self.ids:
            r = await self.send("POST", "/experiments", {"original_span_id": SPAN})
            assert r.status_code == 201, r.text
            self.ids["$exp"] = r.json()["id"]
        return self.ids["$exp"]

    async def revalidate(self, experiment_id: str) -> None:
        """What the store holds for ``experiment_id`` reads back and re-imports."""
        quoted = quote(experiment_id, safe="")
        got = await self.client.get(f"/experiments/{quoted}")
        assert got.status_code == 200, got.text
        assert got.json()["id"] == experiment_id
        for part in ("history", "runs"):
            r = await self.client.get(f"/experiments/{quoted}/{part}")
            assert r.status_code == 200, r.text
            assert isinstance(r.json()["data"], list)
        exported = await self.client.get(f"/experiments/{quoted}/export")
        assert exported.status_code == 200, exported.text
        again = await self.client.post(
            "/experiments/import",
            params={"on_conflict": "copy"},
            content=exported.content,
            headers={"content-type": "application/json"},
        )
        assert again.status_code == 201, f"stored experiment does not re-import: {again.text}"
        listed = await self.client.get("/experiments", params={"q": experiment_id})
        assert listed.status_code == 200, listed.text


@pytest.fixture
async def fuzz(gateway: Gateway) -> Fuzz:
    return Fuzz(gateway, await capture(gateway, CHAT))


# --- the properties --------------------------------------------------------------------


# The inputs, always tried first; the drawn ones add breadth.
VALID_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
IMPORTED = {
    "original_span_id": "span-x",
    "original_trace_id": "trace-x",
    "original_request": VALID_REQUEST,
}
HISTORY_ENTRY = {"version": 1, "action": "created", "at": STAMP, "snapshot": {}}
RUN_ENTRY = {"id": "run-x", "status": "completed", "request": VALID_REQUEST, "started_at": STAMP}


@FUZZ
@example(body={"original_span_id": SPAN, "project_id": ""}, run=False)
@example(
    body={"original_span_id": SPAN, "modified_request": Raw(deep_text(300, "list"))}, run=False
)
@example(
    body={**IMPORTED, "modified_request": {"model": "m", "x": Raw(deep_text(1020, "obj"))}},
    run=False,
)
@example(body={"original_span_id": SPAN, "model_parameters": {"max_tokens": 2**63}}, run=True)
@example(body={"original_span_id": SPAN, "headers": {"x-custom": "\U000ab41e"}}, run=True)
@example(
    body={
        "original_span_id": SPAN,
        "headers": {"x-custom": "{{tone}}"},
        "prompt_variables": {"tone": "a\r\nx-injected: 1"},
    },
    run=True,
)
@given(body=CREATE_BODY, run=st.booleans())
async def test_create_never_fails_and_stores_only_valid_rows(
    fuzz: Fuzz, body: Any, run: bool
) -> None:
    r = await fuzz.send("POST", "/experiments", body)
    if r.status_code != 201:
        return
    experiment_id = r.json()["id"]
    await fuzz.revalidate(experiment_id)
    if run:
        ran = await fuzz.send("POST", f"/experiments/{experiment_id}/run")
        if ran.status_code == 200:
            await fuzz.send("GET", f"/experiments/{experiment_id}/compare")
        await fuzz.revalidate(experiment_id)


@FUZZ
@example(body={"project_id": ""}, method="PUT", restore=1)
@example(body={"version": 2**63}, method="PATCH", restore=2**63)
@example(body={"prompt_variables": Raw(deep_text(900, "obj"))}, method="PUT", restore=1)
@given(body=UPDATE_BODY, method=st.sampled_from(["PUT", "PATCH"]), restore=st.integers(-1, 5))
async def test_update_never_fails_and_stores_only_valid_rows(
    fuzz: Fuzz, body: Any, method: str, restore: int
) -> None:
    experiment_id = await fuzz.experiment()
    r = await fuzz.send(method, f"/experiments/{experiment_id}", body)
    if r.status_code == 200:
        await fuzz.revalidate(experiment_id)
    restored = await fuzz.send("POST", f"/experiments/{experiment_id}/history/{restore}/restore")
    if restored.status_code == 200:
        await fuzz.revalidate(experiment_id)


@FUZZ
@example(body={**IMPORTED, "runs": 5}, mode="copy")
@example(body={**IMPORTED, "history": 5}, mode="copy")
@example(body={**IMPORTED, "runs": "abc"}, mode="copy")
@example(body={**IMPORTED, "history": [{**HISTORY_ENTRY, "run_id": ["r"]}]}, mode="copy")
@example(body={**IMPORTED, "history": [{**HISTORY_ENTRY, "version": 2**63}]}, mode="copy")
@example(body={**IMPORTED, "runs": [{**RUN_ENTRY, "duration_ms": 2**63}]}, mode="copy")
@example(body={**IMPORTED, "version": 2**63}, mode="copy")
@example(body={**IMPORTED, "project_id": ""}, mode="copy")
@example(body={**IMPORTED, "history": [HISTORY_ENTRY, HISTORY_ENTRY]}, mode="copy")
@example(body={**IMPORTED, "error": {"n": 2**64 - 1}}, mode="copy")
@example(body={"experiments": [{**IMPORTED, "runs": [{**RUN_ENTRY, "error": {}}]}]}, mode="copy")
@given(body=IMPORT_BODY, mode=st.sampled_from(["error", "skip", "copy", "bogus"]))
async def test_import_never_fails_and_stores_only_valid_rows(
    fuzz: Fuzz, body: Any, mode: str
) -> None:
    r = await fuzz.send("POST", "/experiments/import", body, params={"on_conflict": mode})
    if r.status_code == 201:
        for item in r.json()["data"]:
            await fuzz.revalidate(item["id"])


@FUZZ
@given(body=DUPLICATE_BODY)
async def test_duplicate_never_fails_and_stores_only_valid_rows(fuzz: Fuzz, body: Any) -> None:
    experiment_id = await fuzz.experiment()
    r = await fuzz.send("POST", f"/experiments/{experiment_id}/duplicate", body)
    if r.status_code == 201:
        await fuzz.revalidate(r.json()["id"])


@FUZZ
@example(path="/spans", query=[("cursor", cursor_of("[[1], [2]]"))])
@example(path="/experiments", query=[("cursor", cursor_of('[{"a": 1}, 2]'))])
@example(path="/spans", query=[("cursor", "5")])
@example(path="/spans", query=[("cursor", cursor_of("[1, 2, 3]"))])
@example(path="/spans", query=[("q", "a" * 60_000)])
@example(path="/stats", query=[("q", "%" * 20_000)])
@example(path="/experiments/export", query=[("q", "a" * 60_000), ("cursor", "x")])
@example(path="/threads", query=[("offset", str(2**63))])
@given(
    path=st.sampled_from(["/spans", "/stats", "/threads", "/experiments", "/experiments/export"]),
    query=QUERY,
)
async def test_list_queries_never_fail(fuzz: Fuzz, path: str, query: Any) -> None:
    assume(fits_in_url(query))
    await fuzz.experiment()
    r = await fuzz.send("GET", path, params=[(k, fuzz.ids.get(v, v)) for k, v in query])
    if r.status_code == 200:
        assert isinstance(r.json(), dict)


@settings(FUZZ, max_examples=80)
@given(path=st.sampled_from(READ_PATHS), path_id=PATH_ID, query=QUERY)
async def test_reads_never_fail(fuzz: Fuzz, path: str, path_id: str, query: Any) -> None:
    assume(fits_in_url(query))
    await fuzz.experiment()
    resolved = fuzz.ids.get(path_id, path_id)
    r = await fuzz.send("GET", path.replace("{id}", quote(resolved, safe="")), params=query)
    if r.status_code == 200 and r.headers["content-type"].startswith("application/json"):
        assert isinstance(r.json(), dict)


@settings(FUZZ, max_examples=60)
@given(method=METHODS, path=st.sampled_from(READ_PATHS), body=st.none() | JSON | DEEP)
async def test_any_method_on_any_route_has_the_error_shape(
    fuzz: Fuzz, method: str, path: str, body: Any
) -> None:
    experiment_id = await fuzz.experiment()
    # Never delete the shared experiment: the other examples edit it.
    target = path.replace("{id}", "nope" if method == "DELETE" else experiment_id)
    await fuzz.send(method, target, body)
