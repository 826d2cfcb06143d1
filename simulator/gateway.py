"""What a card gateway adds to each payment, and the frauds only those fields reveal.

Every payment gets the gateway's fields (`deployments.http.schemas.TransactionIn`): the
merchant's category, country and channel, the entry mode, the card's issuing (BIN)
country, and for e-commerce the payer's device, IP address and email. Countries are regions
of the handbook's 100x100 grid, so a card pays mostly at home. Card-present payments carry
no device, IP or email (a gateway has none to send).

Three scenarios that per-card history alone cannot see (labelled like the handbook's):

- 5, device farm: a bot ring tests many cards from a few devices and IP addresses, a $0
  verification then small probes, at e-commerce merchants, within an hour or two;
- 6, account takeover: a known card's account (its email) from a new device and IP in a
  foreign country, several larger payments within hours;
- 7, cross-border: stolen card details used at e-commerce merchants in a country other than
  the card's BIN country, with throwaway emails and unknown devices.

All of it draws from random streams of its own, so the handbook's columns and scenarios 1-4
are the same with or without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COUNTRIES = ("US", "CA", "GB", "DE", "FR", "NL", "ES", "IT", "BR", "MX", "JP", "AU")
GRID_COLUMNS = 4  # countries are a 4 x 3 grid of regions over the 100 x 100 plane
CARD_PRESENT_MCC = ("5411", "5812", "5541", "5311", "5912")
ECOMMERCE_MCC = ("5732", "5942", "4899", "5999", "7995")
CARD_PRESENT_MODES = ("chip", "contactless", "magstripe")
CARD_PRESENT_WEIGHTS = (0.6, 0.35, 0.05)
ECOMMERCE_SHARE = 0.3  # of terminals
DEVICE_FARM, TAKEOVER, CROSS_BORDER = 5, 6, 7
GATEWAY_TERMINALS, GATEWAY_BLOCK = 3, 4  # random stream tags (generate.py uses 0-2)

COLUMNS = (
    "mcc", "merchant_country", "bin_country", "channel", "entry_mode", "device_id", "ip", "email",
)  # fmt: skip


def region(xy: np.ndarray) -> np.ndarray:
    """Country index of each point of the grid."""
    col = np.minimum((xy[:, 0] / (100 / GRID_COLUMNS)).astype(np.int64), GRID_COLUMNS - 1)
    rows = len(COUNTRIES) // GRID_COLUMNS
    row = np.minimum((xy[:, 1] / (100 / rows)).astype(np.int64), rows - 1)
    out: np.ndarray = row * GRID_COLUMNS + col
    return out


@dataclass(frozen=True)
class Merchants:
    """Every terminal's country, channel and category, and the stream's `population`: its
    seed, in every device name, email and home address, so streams of two seeds (played
    against one service) share no device, email or home address."""

    country: np.ndarray  # index into COUNTRIES
    ecommerce: np.ndarray  # bool
    mcc: np.ndarray  # object (str)
    online_by_country: list[np.ndarray]  # e-commerce terminal ids per country
    population: int = 0

    @classmethod
    def of(cls, seed: int, term_xy: np.ndarray) -> Merchants:
        rng = np.random.default_rng([seed, GATEWAY_TERMINALS])
        n = len(term_xy)
        online = rng.random(n) < ECOMMERCE_SHARE
        mcc = np.where(
            online,
            np.array(ECOMMERCE_MCC, object)[rng.integers(0, len(ECOMMERCE_MCC), n)],
            np.array(CARD_PRESENT_MCC, object)[rng.integers(0, len(CARD_PRESENT_MCC), n)],
        )
        country = region(term_xy)
        by_country = [np.flatnonzero(online & (country == c)) for c in range(len(COUNTRIES))]
        return cls(country, online, mcc, by_country, seed)

    def foreign_online(self, home: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An e-commerce terminal in a country other than each card's `home`."""
        shift = rng.integers(1, len(COUNTRIES), len(home))
        out = np.empty(len(home), np.int64)
        for i, country in enumerate((home + shift) % len(COUNTRIES)):
            pool = self.online_by_country[country]
            if not len(pool):  # a country with no online merchant: any online one
                pool = np.flatnonzero(self.ecommerce)
            out[i] = pool[rng.integers(0, len(pool))]
        return out


@dataclass(frozen=True)
class Probes:
    """One day's scenario 5-7 payments for all cards: who, where, when, how much, from
    which device and IP with which email (None: the card's own), and the scenario."""

    cust: np.ndarray
    term: np.ndarray  # -1: a foreign e-commerce merchant, picked with the card's country
    secs: np.ndarray
    amount: np.ndarray
    device: np.ndarray  # object
    ip: np.ndarray  # object
    email: np.ndarray  # object; None: the card's own email
    scenario: np.ndarray

    def rows(self, mine: np.ndarray) -> Probes:
        return Probes(*(getattr(self, f)[mine] for f in self.__dataclass_fields__))


def card_email(cust: np.ndarray, population: int) -> np.ndarray:
    return np.array([f"user{c}.p{population}@mail.example" for c in cust.tolist()], object)


def card_ip(cust: np.ndarray, k: np.ndarray, population: int) -> np.ndarray:
    """A card's home addresses: 100.64.0.0/10 (shared address space), four per card, in a
    /16 of the population's (64 of them: cards 16,384 apart share addresses)."""
    n = (100 << 24 | 64 << 16) + ((population % 64) << 16) + (cust % (1 << 14)) * 4 + k
    return np.array(
        [f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}" for a in n.tolist()], object
    )


def remote_ip(k: np.ndarray, population: int) -> np.ndarray:
    """Fraudsters' addresses (proxies, hosting): 198.18.0.0/15, 4,096 per population."""
    n = (198 << 24 | 18 << 16) + ((population % 32) << 12) + np.asarray(k, np.int64)
    return np.array(
        [f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}" for a in n.tolist()], object
    )


def day_probes(
    day: int,
    rng: np.random.Generator,
    n_customers: int,
    merchants: Merchants,
    farms: int,
    takeovers: int,
    cross_border: int,
) -> Probes:
    """The day's device-farm, takeover and cross-border payments (`rng`: the day's own)."""
    parts: list[Probes] = []
    online = np.flatnonzero(merchants.ecommerce)
    for f in range(farms):
        cards = rng.choice(n_customers, int(rng.integers(10, 41)), replace=False)
        tries = rng.integers(1, 4, len(cards))  # a $0 verification, then small probes
        cust = np.repeat(cards, tries)
        start = rng.uniform(0, 86_400 - 7_200)
        secs = (start + rng.uniform(0, rng.uniform(1_800, 7_200), len(cust))).astype(np.int64)
        group = np.repeat(np.arange(len(cards)), tries)
        secs = secs[np.lexsort((secs, group))]  # each card's tries in time order
        first = np.r_[True, cust[1:] != cust[:-1]]  # its earliest try: the $0 verification
        amount = np.where(first, 0.0, np.round(rng.uniform(0.5, 3.0, len(cust)), 2))
        devices = np.array(
            [f"farm-{merchants.population}-{day}-{f}-{k}" for k in range(int(rng.integers(1, 3)))],
            object,
        )
        ips = remote_ip(
            np.array([(day * 7 + f * 3 + k) % 250 + 1 for k in range(3)]), merchants.population
        )
        parts.append(Probes(
            cust, online[rng.integers(0, len(online), len(cust))],
            secs + day * 86_400, amount,
            devices[rng.integers(0, len(devices), len(cust))],
            ips[rng.integers(0, int(rng.integers(1, 4)), len(cust))],
            np.array([f"x{rng.integers(1 << 30)}@mail.example" for _ in cust], object),
            np.full(len(cust), DEVICE_FARM, np.int8),
        ))  # fmt: skip
    for kind, k, low, high in (
        (TAKEOVER, takeovers, 150.0, 900.0),
        (CROSS_BORDER, cross_border, 20.0, 200.0),
    ):
        cards = rng.choice(n_customers, min(k, n_customers), replace=False)
        sizes = (
            rng.integers(2, 7, len(cards)) if kind == TAKEOVER else rng.integers(1, 5, len(cards))
        )
        cust = np.repeat(cards, sizes)
        span = 3 * 3_600 if kind == TAKEOVER else 86_400 - 1
        starts = np.repeat(rng.uniform(0, 86_400 - span, len(cards)), sizes)
        secs = (starts + rng.uniform(0, span, len(cust))).astype(np.int64) + day * 86_400
        tag = "ato" if kind == TAKEOVER else "cb"
        device = np.repeat(
            np.array(
                [f"{tag}-{merchants.population}-{day}-{i}" for i in range(len(cards))], object
            ),
            sizes,
        )
        ip = np.repeat(
            remote_ip(
                np.array([1024 + int(rng.integers(1, 255)) for _ in cards], np.int64),
                merchants.population,
            ),
            sizes,
        )
        email = (
            np.full(len(cust), None, object)  # the account's own: a takeover
            if kind == TAKEOVER
            else np.array([f"x{rng.integers(1 << 30)}@mail.example" for _ in cust], object)
        )
        parts.append(Probes(
            cust, np.full(len(cust), -1, np.int64), secs,
            np.round(rng.uniform(low, high, len(cust)), 2), device, ip, email,
            np.full(len(cust), kind, np.int8),
        ))  # fmt: skip
    if not parts:
        return Probes(
            *(
                np.empty(0, d)
                for d in (np.int64, np.int64, np.int64, np.float64, object, object, object, np.int8)
            )
        )
    return Probes(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Probes.__dataclass_fields__)
    )
