"""The LLM judge's rubric templates (Mustache: ``{{input}}``, ``{{output}}``,
``{{expected}}``). An evaluator starts from one (``template``) and may replace its text
(``rubric``); ``GET /evaluators/types`` lists them for the UI's editor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUBRIC_VARIABLES = ("input", "output", "expected")


@dataclass(frozen=True, slots=True)
class Rubric:
    name: str
    label: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "text": self.text}


RUBRICS: dict[str, Rubric] = {
    rubric.name: rubric
    for rubric in (
        Rubric(
            "correctness",
            "Correctness",
            "You grade whether an answer is correct.\n\n"
            "Question:\n{{input}}\n\n"
            "Reference answer:\n{{expected}}\n\n"
            "Answer to grade:\n{{output}}\n\n"
            "Score 1 if the answer is correct and complete with respect to the reference,"
            " 0 if it is wrong, and a value in between for a partly correct answer."
            " Wording may differ from the reference; facts may not.",
        ),
        Rubric(
            "faithfulness",
            "Faithfulness to a reference",
            "You grade whether an answer is faithful to a reference text: every claim it"
            " makes must be supported by the reference.\n\n"
            "Reference:\n{{expected}}\n\n"
            "Question:\n{{input}}\n\n"
            "Answer to grade:\n{{output}}\n\n"
            "Score 1 if every claim is supported, 0 if the answer contradicts the"
            " reference or invents facts, in between for minor unsupported details.",
        ),
        Rubric(
            "style",
            "Style",
            "You grade the style of an answer: clear, concise, polite, well organised,"
            " in the language of the question.\n\n"
            "Question:\n{{input}}\n\n"
            "Answer to grade:\n{{output}}\n\n"
            "Score 1 for an answer a careful editor would not change, 0 for one that is"
            " confusing, rude or rambling, in between otherwise.",
        ),
    )
}

# What the judge is told besides the rubric: answer in JSON, and nothing else.
VERDICT_INSTRUCTIONS = (
    "Answer with a JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one or two sentences saying why>"}.'
)

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
