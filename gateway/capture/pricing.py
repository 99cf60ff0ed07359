"""Cost of a call in USD, from the price table shipped in ``prices.json`` plus the
``[prices]`` overrides of the config.

A model is priced only when its name (or its name without a date or ``-latest``
suffix: ``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``) is in the table. An
unknown model gets no cost rather than a guessed, wrong one. A call names up to three
models (the one the upstream says answered, the one sent upstream, the one the client
asked for): `PriceTable.first_priced` takes the first of them the table knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources

import orjson

from gateway.config import Price

_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def shipped_prices() -> dict[str, Price]:
    raw = orjson.loads(resources.files("gateway").joinpath("prices.json").read_bytes())
    return {
        name: Price(
            input=float(entry["input"]),
            output=float(entry["output"]),
            cached_input=entry.get("cached_input"),
        )
        for name, entry in raw.items()
        if not name.startswith("_")
    }


class PriceTable:
    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = shipped_prices()
        self._prices.update(overrides or {})
        self._found: dict[str, Price | None] = {}  # model name -> price, as looked up

    def entries(self) -> dict[str, Price]:
        """The whole table, overrides applied (the writer process gets a copy)."""
        return dict(self._prices)

    def lookup(self, model: str | None) -> Price | None:
        if not model:
            return None
        try:
            return self._found[model]
        except KeyError:
            pass
        name = model.split("/", 1)[1] if "/" in model else model
        price = self._prices.get(name) or self._prices.get(model)
        if price is None:
            price = self._prices.get(_SNAPSHOT_SUFFIX.sub("", name))
        if len(self._found) < 10_000:  # model names come from clients: stay bounded
            self._found[model] = price
        return price

    def first_priced(self, models: Iterable[str | None]) -> str | None:
        """The first of ``models`` that has a price (None when none has)."""
        for model in models:
            if self.lookup(model) is not None:
                return model
        return None

    def cost(
        self,
        model: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        cached_tokens: int | None = None,
    ) -> float | None:
        price = self.lookup(model)
        if price is None or (prompt_tokens is None and completion_tokens is None):
            return None
        prompt = prompt_tokens or 0
        cached = min(cached_tokens or 0, prompt)
        cached_rate = price.cached_input if price.cached_input is not None else price.input
        usd = (
            (prompt - cached) * price.input
            + cached * cached_rate
            + (completion_tokens or 0) * price.output
        ) / 1_000_000
        return round(usd, 10)
