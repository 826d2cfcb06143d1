"""A client that never loses a transaction: retries with the same id until answered, and
keeps a ledger of what the service accepted (for fault runs' exactly-once checks)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Ledger:
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # tx id -> body + answer
    statuses: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    gave_up: list[str] = field(default_factory=list)
    events: list[tuple[float, int, int]] = field(default_factory=list)  # (time, lane, status)

    def per_card(self) -> dict[str, tuple[int, float]]:
        """(accepted transactions, amount sum) per card, in acceptance order."""
        out: dict[str, tuple[int, float]] = {}
        for entry in self.accepted.values():
            n, s = out.get(entry["user_id"], (0, 0.0))
            out[entry["user_id"]] = (n + 1, s + entry["amount"])
        return out


class LedgerClient:
    def __init__(
        self,
        url: str,
        retry_for_s: float = 60.0,
        timeout_s: float = 30.0,
        deadline_ms: float | None = None,
    ) -> None:
        """`deadline_ms`: the budget each batch asks for (`x-fraud-deadline-ms`), as a
        gateway that cannot wait would; None waits for state."""
        headers = {"content-type": "application/json"}
        if deadline_ms is not None:
            headers["x-fraud-deadline-ms"] = f"{deadline_ms:g}"
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout_s, headers=headers)
        self.retry_for_s = retry_for_s
        self.ledger = Ledger()

    async def send(self, bodies: list[dict[str, Any]], lane: int = 0) -> None:
        """POST a batch until it is answered 200 (5xx, 429 and network errors are retried
        with the same body after Retry-After); 4xx other than 429 is final."""
        deadline = time.monotonic() + self.retry_for_s
        payload = orjson.dumps({"transactions": bodies})
        while True:
            try:
                r = await self.http.post("/v1/transactions/batch", content=payload)
                status = r.status_code
            except httpx.HTTPError:
                status = 599
            self.ledger.statuses[str(status)] = self.ledger.statuses.get(str(status), 0) + 1
            self.ledger.events.append((time.monotonic(), lane, status))
            if status == 200:
                for b, res in zip(bodies, r.json()["results"], strict=True):
                    self.ledger.accepted[b["transaction_id"]] = {**b, **res}
                return
            if (400 <= status < 500 and status != 429) or time.monotonic() > deadline:
                self.ledger.gave_up.extend(b["transaction_id"] for b in bodies)
                return
            self.ledger.retries += 1
            wait = float(r.headers.get("retry-after", 0.2)) if status < 599 else 0.2
            await asyncio.sleep(min(wait, 2.0))

    async def close(self) -> None:
        await self.http.aclose()
