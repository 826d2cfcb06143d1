"""Time-based splits with a label-delay gap; never a random split.

The handbook's rule: a model trained on days [s, s + train) is tested on days
[s + train + delay, ... + test); cards whose fraud was already known (from the training block,
or from the day that is `delay` days before each test day) are removed from the test set,
since an investigator would have blocked them already.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame


def day_index(frame: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
    """Whole days since `origin` (midnight of the data's first day)."""
    return ((frame["timestamp"] - origin) // pd.Timedelta(days=1)).to_numpy()


def data_origin(frame: pd.DataFrame) -> pd.Timestamp:
    first: pd.Timestamp = frame["timestamp"].min().normalize()
    return first


def train_test_split(
    frame: pd.DataFrame,
    start_train: dt.date | pd.Timestamp,
    train_days: int = 7,
    delay_days: int = 7,
    test_days: int = 7,
    origin: pd.Timestamp | None = None,
) -> Split:
    """The handbook's `get_train_test_set`, on the canonical schema."""
    origin = data_origin(frame) if origin is None else origin
    days = day_index(frame, origin)
    s = int((pd.Timestamp(start_train) - origin) // pd.Timedelta(days=1))
    train_mask = (days >= s) & (days < s + train_days)
    train = frame[train_mask]
    known = set(train.loc[train["is_fraud"] == 1, "user_id"].tolist())
    parts = []
    for d in range(test_days):
        delay_day = frame[days == s + train_days + d - 1]
        known |= set(delay_day.loc[delay_day["is_fraud"] == 1, "user_id"].tolist())
        test_day = frame[days == s + train_days + delay_days + d]
        parts.append(test_day[~test_day["user_id"].isin(known)])
    test = pd.concat(parts) if parts else frame.iloc[:0]
    return Split(train=train, test=test.sort_values("transaction_id"))


@dataclass(frozen=True)
class Blocks:
    """train / delay / validation / delay / test, as day blocks counted back from the end."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    train_start: pd.Timestamp
    train_days: int
    validation_start: pd.Timestamp
    test_start: pd.Timestamp


def time_blocks(
    frame: pd.DataFrame,
    delay_days: int = 7,
    valid_days: int = 7,
    test_days: int = 7,
    train_days: int | None = None,
    warmup_days: int = 7,
) -> Blocks:
    """Blocks anchored at the data's last day; training takes what is left after warm-up."""
    origin = data_origin(frame)
    n_days = int(day_index(frame, origin).max()) + 1
    test_start = n_days - test_days
    valid_start = test_start - delay_days - valid_days
    train_end = valid_start - delay_days
    first = warmup_days if train_days is None else train_end - train_days
    if first < 0 or train_end - first < 1:
        raise ValueError(
            f"{n_days} days of data are too few for warm-up {warmup_days} + train + "
            f"2 x delay {delay_days} + validation {valid_days} + test {test_days} days"
        )
    day = pd.Timedelta(days=1)
    start = origin + first * day
    valid = train_test_split(frame, start, train_end - first, delay_days, valid_days, origin)
    # For the test block, frauds seen in training and validation count as already known.
    test = train_test_split(
        frame, start, test_start - delay_days - first, delay_days, test_days, origin
    )
    return Blocks(
        train=valid.train,
        validation=valid.test,
        test=test.test,
        train_start=origin + first * day,
        train_days=train_end - first,
        validation_start=origin + valid_start * day,
        test_start=origin + test_start * day,
    )
