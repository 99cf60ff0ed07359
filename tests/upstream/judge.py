"""A scripted LLM judge for the suite's fake upstream: `JudgeScript` answers a judge's
call (its system message asks for a JSON verdict, as `gateway.evaluation.rubrics`
words it) by the judge model's name, and leaves every other call to the deterministic
upstream of ``tests/experiments_upstream.py``:

* ``VERDICT_MODEL``: a verdict, score 1 when the answer graded contains the reference
  answer's first word, else 0, with a reason saying which;
* ``GARBAGE_MODEL``: words with no verdict in them;
* ``SLOW_MODEL``: a verdict, but only after ``slow_s`` seconds (a judge timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tests.experiments_upstream import ScriptedUpstream
from tests.upstream.server import Reply

VERDICT_MODEL = "gpt-4o"
GARBAGE_MODEL = "gpt-4.1-nano"
SLOW_MODEL = "gpt-4.1-mini"
JUDGE_PROMPT = "Answer with a JSON object"


def _section(prompt: str, title: str) -> str:
    return prompt.split(f"{title}:\n", 1)[-1].split("\n\n", 1)[0] if title in prompt else ""


def verdict(prompt: str) -> dict[str, Any]:
    answer = _section(prompt, "Answer to grade")
    reference = _section(prompt, "Reference answer").split()
    good = bool(reference) and reference[0].lower() in answer.lower()
    reason = f"The answer {'names' if good else 'does not name'} {' '.join(reference[:1])}."
    return {"score": 1 if good else 0, "reason": reason}


class JudgeScript(ScriptedUpstream):
    def __init__(self, slow_s: float = 5.0) -> None:
        super().__init__()
        self.slow_s = slow_s
        self.judge_calls: list[dict[str, Any]] = []

    def __call__(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        body = orjson.loads(raw) if raw else {}
        messages = body.get("messages") or [{}]
        if not str(messages[0].get("content") or "").startswith(JUDGE_PROMPT):
            return super().__call__(method, target, headers, raw)
        self.judge_calls.append(body)
        model = body.get("model")
        prompt = str(messages[-1].get("content") or "")
        content = (
            "Honestly it reads well to me."
            if model == GARBAGE_MODEL
            else orjson.dumps(verdict(prompt)).decode()
        )
        payload = {
            "id": "chatcmpl-judge",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220},
        }
        wait = self.slow_s if model == SLOW_MODEL else 0.0
        return Reply(200, "application/json", [orjson.dumps(payload)], wait=wait)
