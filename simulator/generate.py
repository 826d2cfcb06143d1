"""Vectorised generator of the handbook's transaction model, streamed day by day.

Customers and terminals sit on a 100x100 grid; a card pays only at terminals within the
radius. Per day each card makes Poisson(mean) payments at normal times of day with normal
amounts. Fraud: (1) every amount > 220; (2) each day a few terminals are compromised for 28
days; (3) each day a few cards are compromised for 14 days and a third of their payments are
fraud with amount x5; (4, ours) card testing: a burst of small payments at terminals the card
never used, within minutes, which only time-aware per-card features can see; (5-7, ours,
off unless asked for) a device farm, an account takeover and cross-border fraud, which only
a gateway's device, IP, email and country fields reveal (`simulator.gateway`, which also
gives every payment those fields).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.parts import part_writer
from simulator import gateway
from simulator.config import SimulationConfig
from simulator.gateway import Merchants, Probes

Progress = Callable[[int, int], None] | None

SCHEMA = pa.schema(
    [
        ("transaction_id", pa.int64()),
        ("timestamp", pa.timestamp("ms")),
        ("user_id", pa.int64()),
        ("terminal_id", pa.int64()),
        ("amount", pa.float64()),
        ("is_fraud", pa.int8()),
        ("fraud_scenario", pa.int8()),
        *((name, pa.string()) for name in gateway.COLUMNS),
    ]
)
N_SCENARIOS = 8  # 0 genuine, 1-4 the handbook's and card testing, 5-7 the gateway's
SECONDS_PER_DAY = 86_400


# A stream is generated in blocks of `cards_per_block` cards, each with its own random stream
# (seeded by the seed and the block's number), plus one stream per day for the events every
# block must agree on (which terminals and cards are compromised, who is card-tested). A
# block's cards therefore get the same transactions whichever worker generates them, so the
# output of a seed is the same for any number of workers.
ID_STRIDE = 10**10  # transaction_id = block * ID_STRIDE + the transaction's number in its block
_TERMINALS, _BLOCK, _DAY = 0, 1, 2  # the random streams' tags


@dataclass(frozen=True)
class Profiles:
    """One block's card profiles, plus each card's reachable terminals (CSR)."""

    first_card: int
    cust_xy: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_tx_per_day: np.ndarray
    terminal_offsets: np.ndarray  # card i's terminals: terminal_ids[offsets[i]:offsets[i+1]]
    terminal_ids: np.ndarray


def n_blocks(cfg: SimulationConfig) -> int:
    return -(-cfg.n_customers // cfg.cards_per_block)


def part_blocks(cfg: SimulationConfig, part: int, parts: int) -> range:
    """The contiguous run of blocks that part `part` of `parts` generates."""
    n = n_blocks(cfg)
    if not 1 <= parts <= n:
        raise ValueError(
            f"workers: {parts} asked for, but {cfg.n_customers:,} cards make {n} block(s) of "
            f"{cfg.cards_per_block}; use at most {n} workers or smaller cards_per_block"
        )
    return range(part * n // parts, (part + 1) * n // parts)


def terminal_positions(cfg: SimulationConfig) -> np.ndarray:
    rng = np.random.default_rng([cfg.seed, _TERMINALS])
    return rng.uniform(0, 100, size=(cfg.n_terminals, 2)).astype(np.float32)


def make_profiles(
    cfg: SimulationConfig, term_xy: np.ndarray, block: int
) -> tuple[Profiles, np.random.Generator]:
    """Block `block`'s profiles and the random stream its days continue from."""
    rng = np.random.default_rng([cfg.seed, _BLOCK, block])
    first = block * cfg.cards_per_block
    n_c = min(cfg.cards_per_block, cfg.n_customers - first)
    cust_xy = rng.uniform(0, 100, size=(n_c, 2))
    mean_amount = rng.uniform(5, 100, size=n_c)
    mean_tx = rng.uniform(0, 4, size=n_c)

    counts = np.zeros(n_c, dtype=np.int64)
    chunks: list[np.ndarray] = []
    r2 = np.float32(cfg.radius**2)
    step = max(1, 20_000_000 // max(len(term_xy), 1))  # bound the distance matrix to ~80 MB
    for a in range(0, n_c, step):
        c = cust_xy[a : a + step].astype(np.float32)
        d2 = ((c[:, None, :] - term_xy[None, :, :]) ** 2).sum(axis=2)
        rows, cols = np.nonzero(d2 < r2)
        counts[a : a + len(c)] = np.bincount(rows, minlength=len(c))
        chunks.append(cols.astype(np.int32))
    offsets = np.zeros(n_c + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    profiles = Profiles(
        first, cust_xy, mean_amount, mean_amount / 2, mean_tx, offsets, np.concatenate(chunks)
    )
    return profiles, rng


class _ActiveSet:
    """Ids compromised until a given day (exclusive)."""

    def __init__(self) -> None:
        self.until: dict[int, int] = {}

    def add(self, ids: np.ndarray, until_day: int) -> None:
        for i in ids.tolist():
            self.until[i] = max(self.until.get(i, 0), until_day)

    def active(self, day: int) -> np.ndarray:
        self.until = {k: v for k, v in self.until.items() if v > day}
        return np.fromiter(self.until.keys(), dtype=np.int64, count=len(self.until))


Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # card, terminal, second, amount


def _genuine_day(day: int, p: Profiles, rng: np.random.Generator) -> Rows:
    n_avail = np.diff(p.terminal_offsets)
    n_tx = rng.poisson(p.mean_tx_per_day)
    n_tx[n_avail == 0] = 0
    local = np.repeat(np.arange(len(n_tx), dtype=np.int64), n_tx)
    secs = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(local)).astype(np.int64)
    keep = (secs > 0) & (secs < SECONDS_PER_DAY)
    local, secs = local[keep], secs[keep]
    mean, std = p.mean_amount[local], p.std_amount[local]
    amount = rng.normal(mean, std)
    neg = amount < 0
    amount[neg] = rng.uniform(0, 2 * mean[neg])
    amount = np.round(amount, 2)
    pick = (rng.random(len(local)) * n_avail[local]).astype(np.int64)
    term = p.terminal_ids[p.terminal_offsets[local] + pick].astype(np.int64)
    return local + p.first_card, term, secs + day * SECONDS_PER_DAY, amount


@dataclass(frozen=True)
class _DayEvents:
    """What every block must agree on for one day."""

    terminals: np.ndarray  # compromised terminals active today
    cards: np.ndarray  # compromised cards active today
    testing: Rows  # the day's card-testing payments, all cards
    probes: Probes  # the day's device-farm, takeover and cross-border payments, all cards


class _Events:
    """The days' shared events, drawn from one random stream per day."""

    def __init__(self, cfg: SimulationConfig, merchants: Merchants) -> None:
        self.cfg, self.merchants = cfg, merchants
        self.terminals, self.cards = _ActiveSet(), _ActiveSet()

    def day(self, day: int) -> _DayEvents:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, _DAY, day])
        n_ct = min(cfg.compromised_terminals_per_day, cfg.n_terminals)
        self.terminals.add(
            rng.choice(cfg.n_terminals, n_ct, replace=False), day + cfg.terminal_compromise_days
        )
        n_cc = min(cfg.compromised_customers_per_day, cfg.n_customers)
        self.cards.add(
            rng.choice(cfg.n_customers, n_cc, replace=False), day + cfg.customer_compromise_days
        )
        testing = self._testing(day, rng)
        probes = gateway.day_probes(
            day,
            rng,
            cfg.n_customers,
            self.merchants,
            cfg.device_farms_per_day,
            cfg.takeovers_per_day,
            cfg.cross_border_per_day,
        )  # fmt: skip  (drawn after the handbook's events: those stay the same)
        return _DayEvents(self.terminals.active(day), self.cards.active(day), testing, probes)

    def _testing(self, day: int, rng: np.random.Generator) -> Rows:
        cfg = self.cfg
        k = min(cfg.card_testing_per_day, cfg.n_customers)
        cards = rng.choice(cfg.n_customers, size=k, replace=False).astype(np.int64)
        sizes = rng.integers(cfg.card_testing_min_tx, cfg.card_testing_max_tx + 1, size=k)
        span = cfg.card_testing_span_minutes * 60
        starts = rng.uniform(0, SECONDS_PER_DAY - span, size=k)
        cust = np.repeat(cards, sizes)
        offs = rng.uniform(0, span, size=len(cust))
        secs = (np.repeat(starts, sizes) + offs).astype(np.int64) + day * SECONDS_PER_DAY
        amount = np.round(rng.uniform(0.5, 3.0, size=len(cust)), 2)
        term = rng.integers(0, cfg.n_terminals, size=len(cust)).astype(np.int64)
        return cust, term, secs, amount


def _block_day(
    day: int,
    events: _DayEvents,
    p: Profiles,
    rng: np.random.Generator,
    merchants: Merchants,
    gw_rng: np.random.Generator,
) -> tuple[Rows, np.ndarray, dict[str, np.ndarray]]:
    """One block's payments of one day: the handbook's in time order, then the gateway
    scenarios' in time order; their fraud scenarios and gateway fields."""
    g = _genuine_day(day, p, rng)
    last = p.first_card + len(p.mean_amount)
    mine = (events.testing[0] >= p.first_card) & (events.testing[0] < last)
    c = tuple(col[mine] for col in events.testing)
    cust, term, secs, amount = (np.concatenate([a, b]) for a, b in zip(g, c, strict=True))
    n_genuine = len(g[0])
    scenario = np.zeros(len(cust), dtype=np.int8)
    scenario[amount > 220] = 1
    scenario[np.isin(term, events.terminals)] = 2
    hit = np.isin(cust, events.cards)
    hit[:n_genuine] &= rng.random(n_genuine) < 1 / 3
    hit[n_genuine:] = False  # card-testing rows keep their own scenario
    amount[hit] = np.round(amount[hit] * 5, 2)
    scenario[hit] = 3
    scenario[n_genuine:] = 4
    order = np.argsort(secs, kind="stable")
    cust, term, secs, amount, scenario = (a[order] for a in (cust, term, secs, amount, scenario))
    fields = _gateway_fields(cust, term, p, merchants, gw_rng)

    probes = events.probes.rows((events.probes.cust >= p.first_card) & (events.probes.cust < last))
    if len(probes.cust):
        home = gateway.region(p.cust_xy[probes.cust - p.first_card])
        where = np.where(probes.term >= 0, probes.term, merchants.foreign_online(home, gw_rng))
        late = np.argsort(probes.secs, kind="stable")
        own = _gateway_fields(probes.cust[late], where[late], p, merchants, gw_rng)
        own["device_id"], own["ip"] = probes.device[late], probes.ip[late]
        email = probes.email[late]
        own["email"] = np.where(email == None, own["email"], email)  # noqa: E711
        cust, term, secs, amount, scenario = (
            np.concatenate([a, b[late]])
            for a, b in zip(
                (cust, term, secs, amount, scenario),
                (probes.cust, where, probes.secs, probes.amount, probes.scenario),
                strict=True,
            )
        )
        fields = {k: np.concatenate([v, own[k]]) for k, v in fields.items()}
    return (cust, term, secs, amount), scenario, fields


def _gateway_fields(
    cust: np.ndarray, term: np.ndarray, p: Profiles, m: Merchants, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """What the gateway sends with each payment of these cards at these terminals."""
    n = len(cust)
    online = m.ecommerce[term]
    countries = np.array(gateway.COUNTRIES, object)
    modes = np.array(gateway.CARD_PRESENT_MODES, object)
    present = modes[rng.choice(len(modes), n, p=gateway.CARD_PRESENT_WEIGHTS)]
    remote = np.where(rng.random(n) < 0.3, "credential_on_file", "ecommerce").astype(object)
    second = (rng.random(n) < 0.2).astype(np.int64)  # a card's second device and address
    web = np.flatnonzero(online)  # only e-commerce carries a device, an address, an email
    device, ip, email = (np.full(n, None, object) for _ in range(3))
    device[web] = [
        f"dev-{m.population}-{c}-{k}"
        for c, k in zip(cust[web].tolist(), second[web].tolist(), strict=True)
    ]
    ip[web] = gateway.card_ip(cust[web], second[web], m.population)
    email[web] = gateway.card_email(cust[web], m.population)
    return {
        "mcc": m.mcc[term],
        "merchant_country": countries[m.country[term]],
        "bin_country": countries[gateway.region(p.cust_xy[cust - p.first_card])],
        "channel": np.where(online, "ecommerce", "card_present").astype(object),
        "entry_mode": np.where(online, remote, present),
        "device_id": device,
        "ip": ip,
        "email": email,
    }


def generate_days(cfg: SimulationConfig, part: int = 0, parts: int = 1) -> Iterator[pd.DataFrame]:
    """Yield one DataFrame per simulated day, in time order (ties by transaction id), holding
    the cards of part `part` of `parts`; all parts together hold the whole stream."""
    term_xy = terminal_positions(cfg)
    merchants = Merchants.of(cfg.seed, term_xy)
    blocks = [make_profiles(cfg, term_xy, b) for b in part_blocks(cfg, part, parts)]
    events = _Events(cfg, merchants)
    next_seq = [0] * len(blocks)
    start = np.datetime64(cfg.start_date, "s")
    for day in range(cfg.n_days):
        shared = events.day(day)
        cols: list[tuple[Rows, np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
        for i, (profiles, rng) in enumerate(blocks):
            block = profiles.first_card // cfg.cards_per_block
            gw_rng = np.random.default_rng([cfg.seed, gateway.GATEWAY_BLOCK, block, day])
            rows, scenario, fields = _block_day(day, shared, profiles, rng, merchants, gw_rng)
            n = len(scenario)
            ids = block * ID_STRIDE + np.arange(next_seq[i], next_seq[i] + n, dtype=np.int64)
            next_seq[i] += n
            cols.append((rows, scenario, ids, fields))
        cust, term, secs, amount = (np.concatenate([c[0][k] for c in cols]) for k in range(4))
        scenario = np.concatenate([c[1] for c in cols])
        ids = np.concatenate([c[2] for c in cols])
        order = np.lexsort((ids, secs))
        yield pd.DataFrame(
            {
                "transaction_id": ids[order],
                "timestamp": start + secs[order].astype("timedelta64[s]"),
                "user_id": cust[order],
                "terminal_id": term[order],
                "amount": amount[order].astype(np.float64),
                "is_fraud": (scenario[order] > 0).astype(np.int8),
                "fraud_scenario": scenario[order],
                **{k: np.concatenate([c[3][k] for c in cols])[order] for k in gateway.COLUMNS},
            }
        )


class _Tally:
    """Summary statistics of the rows written, summed across days and parts."""

    def __init__(self) -> None:
        self.rows = self.frauds = 0
        self.by_scenario = np.zeros(N_SCENARIOS, dtype=np.int64)

    def add(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        self.frauds += int(frame["is_fraud"].sum())
        self.by_scenario += np.bincount(frame["fraud_scenario"], minlength=N_SCENARIOS)

    def counts(self) -> dict[str, int]:
        scenarios = {f"scenario_{k}": int(self.by_scenario[k]) for k in range(1, N_SCENARIOS)}
        return {"transactions": self.rows, "frauds": self.frauds, **scenarios}


def summary(counts: dict[str, int], n_days: int) -> dict[str, float]:
    """The statistics a run reports, from the counts of one or more parts."""
    rows = counts["transactions"]
    return {
        **counts,
        "fraud_rate": counts["frauds"] / max(rows, 1),
        "transactions_per_day": rows / n_days,
    }


def _write_days(
    writer: pq.ParquetWriter, days: Iterator[pd.DataFrame], n_days: int, progress: Progress
) -> dict[str, int]:
    tally = _Tally()
    for day, frame in enumerate(days):
        frame["timestamp"] = frame["timestamp"].astype("datetime64[ms]")
        writer.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False))
        tally.add(frame)
        if progress is not None:
            progress(day + 1, n_days)
    return tally.counts()


def write_parquet(
    cfg: SimulationConfig, path: str | Path, progress: Progress = None
) -> dict[str, float]:
    """Stream the simulation to one Parquet file, one row group per day; returns summary
    statistics."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, SCHEMA) as writer:
        counts = _write_days(writer, generate_days(cfg), cfg.n_days, progress)
    return summary(counts, cfg.n_days)


def write_part(
    cfg: SimulationConfig, dest: str | Path, part: int, parts: int, progress: Progress = None
) -> dict[str, int]:
    """Write part `part` of `parts` (its cards' whole history) into the partitioned table at
    `dest` (made by `features.parts.prepare`); returns its counts."""
    with part_writer(dest, part, SCHEMA) as writer:
        return _write_days(writer, generate_days(cfg, part, parts), cfg.n_days, progress)
