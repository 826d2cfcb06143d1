"""Compiled per-event loops over ring-buffer state: the one implementation of every feature.

Each loop walks its events in the order given, so one call with a single online transaction
and one call with a day of history run exactly the same arithmetic. State lives in plain NumPy
arrays (one row per user or terminal slot, one column per kept event) so it can be
snapshotted, shipped and restored without any object graph.

Windows are pandas-style time windows, (t - n, t], over integer milliseconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
NO_TIME = np.int64(-(2**62))


@njit(cache=True, nogil=True)
def user_step(
    r_time: np.ndarray,
    r_amount: np.ndarray,
    r_term: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    count_total: np.ndarray,
    sum_total: np.ndarray,
    last_time: np.ndarray,
    overflow: np.ndarray,
    slots: np.ndarray,
    times: np.ndarray,
    amounts: np.ndarray,
    terms: np.ndarray,
    out: np.ndarray,
) -> None:
    """Compute user features for each transaction, then record it in the user's history.

    `out[i]` gets: nb_1d, avg_1d, nb_7d, avg_7d, nb_30d, avg_30d, amount_deviation,
    seconds_since_last, nb_1h, amount_sum_1h, new_terminal. Windows include the current
    transaction; earlier events with the same timestamp count, later arrivals do not.
    """
    cap = r_time.shape[1]
    horizon = 30 * MS_PER_DAY
    for i in range(slots.shape[0]):
        s = slots[i]
        t = times[i]
        a = amounts[i]
        term = terms[i]
        # Forget events that no window can reach any more (history is kept in arrival order;
        # an out-of-order event is excluded by the window tests below, never double counted).
        h = head[s]
        n = length[s]
        while n > 0 and r_time[s, h] <= t - horizon:
            h += 1
            if h == cap:
                h = 0
            n -= 1
        head[s] = h
        length[s] = n

        c1 = 1
        c7 = 1
        c30 = 1
        ch = 1
        s1 = a
        s7 = a
        s30 = a
        sh = a
        prev = NO_TIME
        seen = False
        j = h
        for _ in range(n):
            et = r_time[s, j]
            if et <= t:
                if et > prev:
                    prev = et
                if et > t - horizon:
                    ea = r_amount[s, j]
                    c30 += 1
                    s30 += ea
                    if et > t - 7 * MS_PER_DAY:
                        c7 += 1
                        s7 += ea
                        if et > t - MS_PER_DAY:
                            c1 += 1
                            s1 += ea
                            if et > t - MS_PER_HOUR:
                                ch += 1
                                sh += ea
            if r_term[s, j] == term:
                seen = True
            j += 1
            if j == cap:
                j = 0
        if prev == NO_TIME and last_time[s] != NO_TIME and last_time[s] <= t:
            prev = last_time[s]

        out[i, 0] = c1
        out[i, 1] = s1 / c1
        out[i, 2] = c7
        out[i, 3] = s7 / c7
        out[i, 4] = c30
        out[i, 5] = s30 / c30
        if count_total[s] > 0:
            mean = sum_total[s] / count_total[s]
            out[i, 6] = a / mean if mean > 0 else 1.0
        else:
            out[i, 6] = 1.0
        out[i, 7] = (t - prev) / 1000.0 if prev != NO_TIME else -1.0
        out[i, 8] = ch
        out[i, 9] = sh
        out[i, 10] = 0.0 if seen else 1.0

        # Record the transaction; a full ring drops its oldest event and says so.
        if n == cap:
            h += 1
            if h == cap:
                h = 0
            head[s] = h
            n -= 1
            overflow[s] += 1
        k = h + n
        if k >= cap:
            k -= cap
        r_time[s, k] = t
        r_amount[s, k] = a
        r_term[s, k] = term
        length[s] = n + 1
        count_total[s] += 1
        sum_total[s] += a
        if t > last_time[s]:
            last_time[s] = t


@njit(cache=True, nogil=True)
def terminal_step(
    r_time: np.ndarray,
    r_fraud: np.ndarray,
    r_key: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    overflow: np.ndarray,
    kinds: np.ndarray,
    slots: np.ndarray,
    times: np.ndarray,
    keys: np.ndarray,
    labels: np.ndarray,
    delay_ms: np.int64,
    out: np.ndarray,
    found: np.ndarray,
) -> None:
    """Walk a mixed stream of transactions (kind 0) and label events (kind 1) for terminals.

    A transaction at t gets, for n in 1, 7, 30 days, the count of the terminal's transactions
    in (t - (n + delay), t - delay] and the share of those labelled fraud, then is recorded
    unlabelled. A label event sets (not adds) the label of the recorded transaction with the
    same key, so a repeated label counts once; `found[i]` says whether it was still kept.
    Labels are used only for transactions older than the delay, so an early label waits and a
    late one counts from its arrival.
    """
    cap = r_time.shape[1]
    horizon = 30 * MS_PER_DAY + delay_ms
    for i in range(slots.shape[0]):
        s = slots[i]
        t = times[i]
        h = head[s]
        n = length[s]
        if kinds[i] == 1:
            found[i] = False
            j = h
            for _ in range(n):
                if r_key[s, j] == keys[i]:
                    r_fraud[s, j] = labels[i]
                    found[i] = True
                j += 1
                if j == cap:
                    j = 0
            continue

        while n > 0 and r_time[s, h] <= t - horizon:
            h += 1
            if h == cap:
                h = 0
            n -= 1
        head[s] = h
        length[s] = n

        c1 = 0
        c7 = 0
        c30 = 0
        f1 = 0
        f7 = 0
        f30 = 0
        upper = t - delay_ms
        j = h
        for _ in range(n):
            et = r_time[s, j]
            if et <= upper and et > upper - 30 * MS_PER_DAY:
                fr = r_fraud[s, j]
                c30 += 1
                f30 += fr
                if et > upper - 7 * MS_PER_DAY:
                    c7 += 1
                    f7 += fr
                    if et > upper - MS_PER_DAY:
                        c1 += 1
                        f1 += fr
            j += 1
            if j == cap:
                j = 0
        out[i, 0] = c1
        out[i, 1] = f1 / c1 if c1 > 0 else 0.0
        out[i, 2] = c7
        out[i, 3] = f7 / c7 if c7 > 0 else 0.0
        out[i, 4] = c30
        out[i, 5] = f30 / c30 if c30 > 0 else 0.0

        if n == cap:
            h += 1
            if h == cap:
                h = 0
            head[s] = h
            n -= 1
            overflow[s] += 1
        k = h + n
        if k >= cap:
            k -= cap
        r_time[s, k] = t
        r_fraud[s, k] = 0
        r_key[s, k] = keys[i]
        length[s] = n + 1
