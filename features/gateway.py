"""The gateway's optional fields as the engine takes them, read the one way both drivers
read them: the API's schema (`deployments.http.schemas`) and the offline driver's columns
(`features.offline`) normalise each field with the functions here, so an email or an IP
address written two ways is one link online and offline."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.spec import LINKS


def normal_email(value: str) -> str:
    """Emails compare case-insensitively, without surrounding blanks."""
    return value.strip().lower()


def normal_ip(value: str) -> str:
    """An IPv4 or IPv6 address in its canonical text (`ValueError` if it is none)."""
    return str(ipaddress.ip_address(value.strip()))


def normal_country(value: str) -> str:
    """ISO 3166-1 codes in upper case."""
    return value.strip().upper()


CARD_NOT_PRESENT = {"card_present": 0.0, "ecommerce": 1.0, "mail_telephone": 1.0}
Text = Sequence[str | None]  # one optional gateway field per transaction


@dataclass(frozen=True)
class Gateway:
    """The gateway's optional fields of a batch of transactions (None where absent)."""

    channel: Text
    bin_country: Text
    merchant_country: Text
    device_id: Text
    ip: Text
    email: Text

    @classmethod
    def absent(cls, n: int) -> Gateway:
        none: list[str | None] = [None] * n
        return cls(none, none, none, none, none, none)

    def part(self, a: int, b: int) -> Gateway:
        """Transactions a..b-1."""
        return Gateway(*(column[a:b] for column in vars(self).values()))

    def flags(self) -> np.ndarray:
        """Card not present, and BIN country not the merchant's (NaN where unknown)."""
        n = len(self.channel)
        out = np.full((n, 2), np.nan)
        for i, (ch, bin_c, merchant) in enumerate(
            zip(self.channel, self.bin_country, self.merchant_country, strict=True)
        ):
            if ch is not None:
                out[i, 0] = CARD_NOT_PRESENT[ch]
            if bin_c is not None and merchant is not None:
                out[i, 1] = float(bin_c != merchant)
        return out

    def links(self, user_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The link events of these transactions, in order (for each transaction, its
        entities in `features.spec.LINKS` order): the transaction's row, the entity's index
        in `LINKS`, and the text the link's id is hashed from (entity-qualified, so two
        entities never share a ring)."""
        rows: list[int] = []
        kinds: list[int] = []
        texts: list[str] = []
        columns = (self.device_id, self.ip, self.email, self.merchant_country)
        for i, user in enumerate(user_ids):
            for e, column in enumerate(columns):
                value = column[i]
                if value is None:
                    continue
                rows.append(i)
                kinds.append(e)
                texts.append(
                    f"{LINKS[e]}\x1f{user}\x1f{value}" if e == 3 else f"{LINKS[e]}\x1f{value}"
                )
        return np.asarray(rows, np.int64), np.asarray(kinds, np.int8), texts
