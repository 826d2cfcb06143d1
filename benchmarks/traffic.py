"""Realistic load for the HTTP benchmarks: simulator streams rendered once to fixed-width
JSON lines, so wrk (`wrk_traffic.lua`) and the open-loop client (`openloop.py`) can seek to
any transaction without parsing the file.

Two streams, each cached under data/bench/ by its settings, each payment with the gateway's
fields (channel, countries, and for e-commerce the device, IP address and email):
- `normal`: the handbook's model with the simulator's card testing and the gateway's
  scenarios (a device farm a day, two account takeovers, two cross-border frauds; 5,000
  cards, 183 days), flagged by the default model at about the handbook's fraud rate;
- `attack`: the same cards' behaviour with a card-testing burst on about 10 % of the
  transactions (its ids are apart from `normal`'s, so both can run against one server).

Line k (0-based) starts at byte k * width; each line is one transaction object followed by
a comma, padded with spaces to `width - 1` and a newline, so a run of lines is a JSON array
body once the last comma goes. Rows are in event-time order; a simulated 0.00 payment is left
out, since the API refuses it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator import gateway
from simulator.config import SimulationConfig
from simulator.generate import generate_days

DIRECTORY = Path("data") / "bench"
STREAMS: dict[str, SimulationConfig] = {
    "normal": SimulationConfig(
        seed=7, device_farms_per_day=1, takeovers_per_day=2, cross_border_per_day=2
    ),
    "attack": SimulationConfig(n_days=40, seed=8, card_testing_per_day=100),
}


@dataclass(frozen=True)
class Traffic:
    """A rendered stream: where it is, how to seek in it, what is in it."""

    path: Path
    width: int
    count: int
    fraud_rate: float
    days: int

    def first_of_day(self, day: int) -> int:
        """Index of the first line whose transaction is on `day` (0-based) or later."""
        return int(np.searchsorted(self._days(), day, side="left"))

    def _days(self) -> np.ndarray:
        days: np.ndarray = np.load(self.path.with_suffix(".days.npy"))
        return days

    def lines(self, start: int, count: int) -> list[bytes]:
        """Transaction bodies `start .. start + count - 1`, each without its comma."""
        with self.path.open("rb") as f:
            f.seek(start * self.width)
            raw = f.read(count * self.width)
        return [raw[i : i + self.width].rstrip()[:-1] for i in range(0, len(raw), self.width)]


def render(frame: pd.DataFrame, name: str) -> pd.Series:
    """One JSON object per row, with string ids apart per stream."""
    ts = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    tag = name[0]
    out: pd.Series = (
        '{"transaction_id":"' + tag + "t" + frame["transaction_id"].astype(str)
        + '","user_id":"' + tag + "c" + frame["user_id"].astype(str)
        + '","terminal_id":"' + tag + "m" + frame["terminal_id"].astype(str)
        + '","amount":' + frame["amount"].map("{:.2f}".format)
        + ',"timestamp":"' + ts + '"'
    )  # fmt: skip
    for name in gateway.COLUMNS:  # the gateway's fields, where the row has them
        if name in frame.columns:
            values = frame[name].astype(object)
            if name in ("device_id", "email"):  # apart per stream, as the ids are
                values = values.where(values.isna(), tag + values.astype(str))
            text = values.map(lambda v: "" if v is None or v != v else json.dumps(v))
            out = out + np.where(text != "", f',"{name}":' + text, "")
    result: pd.Series = out + "},"
    return result


def build(
    name: str, directory: Path = DIRECTORY, config: SimulationConfig | None = None
) -> Traffic:
    """The stream `name` (its settings, or `config`), rendered unless a file for the same
    settings is already there."""
    cfg = config or STREAMS[name]
    digest = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:10]
    path = directory / f"{name}-{digest}.jsonl"
    meta = path.with_suffix(".json")
    if not meta.exists():
        directory.mkdir(parents=True, exist_ok=True)
        frames = list(generate_days(cfg))
        day_of = np.concatenate([np.full(len(f), d, np.int32) for d, f in enumerate(frames)])
        frame = pd.concat(frames, ignore_index=True)
        keep = (frame["amount"] > 0).to_numpy()  # the API refuses a 0.00 payment (422)
        frame, day_of = frame[keep], day_of[keep]
        text = render(frame, name)
        width = int(text.str.len().max()) + 2
        padded = text.str.pad(width - 1, side="right") + "\n"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(padded.tolist()))
        tmp.replace(path)
        np.save(path.with_suffix(".days.npy"), day_of)
        info = {
            "width": width,
            "count": len(frame),
            "fraud_rate": float(frame["is_fraud"].mean()),
            "days": cfg.n_days,
        }
        meta.write_text(json.dumps(info))
    info = json.loads(meta.read_text())
    return Traffic(path=path, **info)
