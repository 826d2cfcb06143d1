"""Compiled per-event loops over ring-buffer state: the one implementation of every feature.

Each loop walks its events in the order given, so one call with a single online transaction
and one call with a day of history run exactly the same arithmetic. State lives in plain NumPy
arrays so it can be snapshotted, shipped and restored without any object graph.

Every user or terminal owns a ring of kept events: a block of `cap` slots in flat per-column
event arrays (the arena), at `offset`, read from `head` for `length` events. A ring starts
empty and grows by `STEP` slots when it is full, up to the configured capacity, so a card
holds about as many slots as its windows need, not the busiest card's. Freed blocks go on a
free list per size (linked through their own first slots) and are reused by the next ring
that grows to that size. A loop that finds the arena full returns the index it stopped at;
the caller enlarges the arena and calls again from there (nothing of that event has been
recorded yet, so it is redone exactly).

Windows are pandas-style time windows, (t - n, t], over integer milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from features.spec import LINK_STATS, MS_PER_DAY, MS_PER_HOUR, VELOCITY_HOURS, WINDOW_DAYS, slot

NO_TIME = np.int64(-(2**62))
# Indices and times inside the loops: Python ints or NumPy int64 scalars (numba compiles both
# to int64; the annotations are for readers and the type checker).
Int = int | np.integer[Any]
STEP = 4
# A card's kept times are 32-bit offsets from its own base, so they span at most 2**32 ms
# (49.7 days). Rebasing keeps a day of room below the oldest event and a week above the newest.
TIME_SPAN = np.int64(2**32)
BASE_MARGIN = np.int64(MS_PER_DAY)
FUTURE_ROOM = np.int64(7 * MS_PER_DAY)
# The windows of `features.spec`, shortest first; the loops test them nested (an event in a
# shorter window is in every longer one), and compile them in as constants.
READ = 2  # terminal_step's event kind for a read: features only, nothing recorded
WINDOW_SHORT, WINDOW_MID, WINDOW_LONG = (n * MS_PER_DAY for n in WINDOW_DAYS)
WINDOW_VELOCITY = VELOCITY_HOURS * MS_PER_HOUR
# Where each feature goes in its kernel's output, from the spec (compiled in as constants).
C_COUNT_SHORT, C_COUNT_MID, C_COUNT_LONG = (slot(f"tx_count_{n}d") for n in WINDOW_DAYS)
C_MEAN_SHORT, C_MEAN_MID, C_MEAN_LONG = (slot(f"avg_amount_{n}d") for n in WINDOW_DAYS)
CARD_DEVIATION = slot("amount_deviation")
CARD_SINCE_LAST = slot("seconds_since_last_tx")
CARD_COUNT_VELOCITY = slot(f"tx_count_{VELOCITY_HOURS}h")
CARD_SUM_VELOCITY = slot(f"amount_sum_{VELOCITY_HOURS}h")
CARD_NEW_TERMINAL = slot("new_terminal")
CARD_MAX_DEVIATION_MID, CARD_MAX_DEVIATION_LONG = (
    slot(f"max_deviation_{n}d") for n in WINDOW_DAYS[1:]
)
T_COUNT_SHORT, T_COUNT_MID, T_COUNT_LONG = (slot(f"terminal_tx_count_{n}d") for n in WINDOW_DAYS)
T_RISK_SHORT, T_RISK_MID, T_RISK_LONG = (slot(f"terminal_risk_{n}d") for n in WINDOW_DAYS)
TERMINAL_LAST_LABEL = slot("terminal_last_label")
L_COUNT_HOUR, L_COUNT_DAY, L_CARDS_HOUR, L_CARDS_DAY, L_CARD_EARLIER = (
    LINK_STATS.index(name)
    for name in ("count_1h", "count_1d", "cards_1h", "cards_1d", "card_earlier")
)


@njit(cache=True, nogil=True)
def size_class(cap: Int) -> Int:
    """Free-list index of a block size (sizes are multiples of STEP, or the capacity)."""
    return (cap + STEP - 1) // STEP


@njit(cache=True, nogil=True)
def _alloc(
    link: np.ndarray, scale: Int, free_head: np.ndarray, top: np.ndarray, size: Int, cap: Int
) -> Int:
    """Offset of a free block of `cap` slots: a freed one of that size, or fresh space at the
    top of the arena; -1 when the arena is full."""
    k = size_class(cap)
    off = free_head[k]
    if off >= 0:
        i = off * scale
        free_head[k] = (np.int64(link[i + 1]) << 32) | (np.int64(link[i]) & 0xFFFFFFFF)
        return off
    if top[0] + cap > size:
        return -1
    off = top[0]
    top[0] += cap
    return off


@njit(cache=True, nogil=True)
def _release(link: np.ndarray, scale: Int, free_head: np.ndarray, off: Int, cap: Int) -> None:
    """Put a block on its size's free list; its first 8 bytes of `link` hold the next one."""
    k = size_class(cap)
    nxt = free_head[k]
    i = off * scale
    link[i] = np.int32(nxt & 0xFFFFFFFF)
    link[i + 1] = np.int32(nxt >> 32)
    free_head[k] = off


@njit(cache=True, nogil=True)
def _relocate(arr: np.ndarray, src: Int, cap: Int, head: Int, n: Int, dst: Int) -> None:
    """Copy a ring's n events, oldest first, to a block at dst (head becomes 0)."""
    j = head
    for k in range(n):
        arr[dst + k] = arr[src + j]
        j += 1
        if j == cap:
            j = 0


@njit(cache=True, nogil=True, inline="always")
def grown(c: Int, max_cap: Int) -> Int:
    """The size a full ring grows to: a step while small (a quiet card's ring stays about as
    large as its windows need), an eighth more once large (a merchant's terminal with
    hundreds of thousands of events is copied a bounded number of times, not once per
    step); always a multiple of STEP, or the capacity."""
    extra = (c // 8) // STEP * STEP
    if extra < STEP:
        extra = STEP
    return min(max_cap, c + extra)


@njit(cache=True, nogil=True)
def _room_for_one(
    col_a: np.ndarray,
    col_b: np.ndarray,
    col_c: np.ndarray,
    col_d: np.ndarray,
    link: np.ndarray,
    scale: Int,
    free_head: np.ndarray,
    top: np.ndarray,
    offset: np.ndarray,
    cap: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    overflow: np.ndarray,
    s: Int,
    max_cap: Int,
) -> tuple[bool, Int, Int, Int, Int]:
    """Room for one more event in row s's full ring: it grows (into a new block, its event
    columns copied; `col_d` may be empty) until the capacity, then drops its oldest event
    and counts it.
    Returns (done, offset, cap, head, length) of the ring after; done is False when the
    arena has no block to grow into, and nothing has changed then."""
    off = offset[s]
    c: Int = np.int64(cap[s])
    h: Int = np.int64(head[s])
    n: Int = np.int64(length[s])
    if c < max_cap:
        nc = grown(c, max_cap)
        dst = _alloc(link, scale, free_head, top, col_a.shape[0], nc)
        if dst < 0:
            return False, off, c, h, n
        _relocate(col_a, off, c, h, n, dst)
        _relocate(col_b, off, c, h, n, dst)
        _relocate(col_c, off, c, h, n, dst)
        if col_d.shape[0] > 0:
            _relocate(col_d, off, c, h, n, dst)
        if c > 0:
            _release(link, scale, free_head, off, c)
        offset[s] = dst
        cap[s] = nc
        head[s] = 0
        return True, dst, nc, 0, n
    h += 1
    if h == c:
        h = 0
    head[s] = h
    length[s] = n - 1
    overflow[s] += 1
    return True, off, c, h, n - 1


@njit(cache=True, nogil=True, inline="always")
def _expire(
    ev_time: np.ndarray, base: Int, off: Int, c: Int, h: Int, n: Int, cutoff: Int
) -> tuple[Int, Int]:
    """Forget a ring's oldest events at or before `cutoff` (no window reaches them any
    more); returns the new (head, length). A card's history is kept in arrival order, so an
    out-of-order event stays until it reaches the head (the windows exclude it meanwhile); a
    terminal's is in time order, so every such event goes."""
    while n > 0 and base + np.int64(ev_time[off + h]) <= cutoff:
        h += 1
        if h == c:
            h = 0
        n -= 1
    return h, n


@njit(cache=True, nogil=True)
def expire_rows(
    ev_time: np.ndarray,
    base: np.ndarray,
    offset: np.ndarray,
    cap: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    n_rows: Int,
    cutoff: Int,
    dirty: np.ndarray,
) -> Int:
    """What a transaction at `cutoff + horizon` does to its own ring (`_expire`), done to
    every ring: quiet ids give back events no later transaction can see. Marks the rows it
    changed in `dirty`; returns how many."""
    changed = 0
    for s in range(n_rows):
        n: Int = np.int64(length[s])
        if n == 0:
            continue
        h, m = _expire(ev_time, base[s], offset[s], np.int64(cap[s]), np.int64(head[s]), n, cutoff)
        if m != n:
            head[s] = h
            length[s] = m
            dirty[s] = True
            changed += 1
    return changed


@njit(cache=True, nogil=True)
def user_step(
    ev_time: np.ndarray,
    ev_cents: np.ndarray,
    ev_term: np.ndarray,
    free_head: np.ndarray,
    top: np.ndarray,
    offset: np.ndarray,
    cap: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    base: np.ndarray,
    count_total: np.ndarray,
    sum_total: np.ndarray,
    last_time: np.ndarray,
    overflow: np.ndarray,
    max_cap: Int,
    slots: np.ndarray,
    times: np.ndarray,
    amounts: np.ndarray,
    cents: np.ndarray,
    terms: np.ndarray,
    out: np.ndarray,
    start: Int,
) -> Int:
    """Compute user features for each transaction, then record it in the user's history.

    `out[i]` gets: nb_1d, avg_1d, nb_7d, avg_7d, nb_30d, avg_30d, amount_deviation,
    seconds_since_last, nb_1h, amount_sum_1h, new_terminal, max_deviation_7d,
    max_deviation_30d. Windows include the current transaction; earlier events with the same
    timestamp count, later arrivals do not. The max deviations are the largest earlier amount
    in the window over the same lifetime mean as the deviation (0 when the window holds no
    earlier event). Window sums add amounts to the cent (`cents`); the deviation uses the
    exact amount. Returns the number of transactions done: less than all when the arena needs
    to grow first.
    """
    horizon = WINDOW_LONG
    for i in range(start, slots.shape[0]):
        s = slots[i]
        t = times[i]
        a = amounts[i]
        aw = cents[i] / 100.0
        term = terms[i]
        off = offset[s]
        c: Int = np.int64(cap[s])
        b = base[s]
        h, n = _expire(ev_time, b, off, c, np.int64(head[s]), np.int64(length[s]), t - horizon)
        head[s] = h
        length[s] = n

        c1 = 1
        c7 = 1
        c30 = 1
        ch = 1
        s1 = aw
        s7 = aw
        s30 = aw
        sh = aw
        m7 = 0.0
        m30 = 0.0
        prev = NO_TIME
        seen = False
        j = h
        for _ in range(n):
            et = b + np.int64(ev_time[off + j])
            if et <= t:
                if et > prev:
                    prev = et
                if et > t - horizon:
                    ea = ev_cents[off + j] / 100.0
                    c30 += 1
                    s30 += ea
                    if ea > m30:
                        m30 = ea
                    if et > t - WINDOW_MID:
                        c7 += 1
                        s7 += ea
                        if ea > m7:
                            m7 = ea
                        if et > t - WINDOW_SHORT:
                            c1 += 1
                            s1 += ea
                            if et > t - WINDOW_VELOCITY:
                                ch += 1
                                sh += ea
            if ev_term[off + j] == term:
                seen = True
            j += 1
            if j == c:
                j = 0
        if prev == NO_TIME and last_time[s] != NO_TIME and last_time[s] <= t:
            prev = last_time[s]

        out[i, C_COUNT_SHORT] = c1
        out[i, C_MEAN_SHORT] = s1 / c1
        out[i, C_COUNT_MID] = c7
        out[i, C_MEAN_MID] = s7 / c7
        out[i, C_COUNT_LONG] = c30
        out[i, C_MEAN_LONG] = s30 / c30
        out[i, CARD_DEVIATION] = 1.0
        out[i, CARD_MAX_DEVIATION_MID] = 0.0
        out[i, CARD_MAX_DEVIATION_LONG] = 0.0
        if count_total[s] > 0:
            mean = sum_total[s] / count_total[s]
            if mean > 0:
                out[i, CARD_DEVIATION] = a / mean
                out[i, CARD_MAX_DEVIATION_MID] = m7 / mean
                out[i, CARD_MAX_DEVIATION_LONG] = m30 / mean
        out[i, CARD_SINCE_LAST] = (t - prev) / 1000.0 if prev != NO_TIME else -1.0
        out[i, CARD_COUNT_VELOCITY] = ch
        out[i, CARD_SUM_VELOCITY] = sh
        out[i, CARD_NEW_TERMINAL] = 0.0 if seen else 1.0

        if n == c:
            done, off, c, h, n = _room_for_one(
                ev_time, ev_cents, ev_term, ev_term[:0], ev_cents, 1, free_head, top,
                offset, cap, head, length, overflow, s, max_cap,
            )  # fmt: skip
            if not done:
                return i
        keep = True
        if t - b < 0 or t - b >= TIME_SPAN:
            # Rebase: a day below the oldest time, or lower only as far as the span allows;
            # events more than ~43 days older than the newest (no window reaches them from
            # there) are dropped and counted.
            lo = t
            hi = t
            j = h
            for _ in range(n):
                et = b + np.int64(ev_time[off + j])
                lo = min(lo, et)
                hi = max(hi, et)
                j += 1
                if j == c:
                    j = 0
            nb = max(lo - BASE_MARGIN, hi - TIME_SPAN + FUTURE_ROOM)
            r = h
            w = h
            kept = 0
            for _ in range(n):
                et = b + np.int64(ev_time[off + r])
                if et >= nb:
                    ev_time[off + w] = np.uint32(et - nb)
                    ev_cents[off + w] = ev_cents[off + r]
                    ev_term[off + w] = ev_term[off + r]
                    kept += 1
                    w += 1
                    if w == c:
                        w = 0
                r += 1
                if r == c:
                    r = 0
            overflow[s] += n - kept
            n = kept
            length[s] = n
            b = nb
            base[s] = nb
            keep = t >= nb
        if keep:
            k = h + n
            if k >= c:
                k -= c
            ev_time[off + k] = np.uint32(t - b)
            ev_cents[off + k] = cents[i]
            ev_term[off + k] = term
            length[s] = n + 1
        else:
            overflow[s] += 1
        count_total[s] += 1
        sum_total[s] += a
        if t > last_time[s]:
            last_time[s] = t
    return slots.shape[0]


@njit(cache=True, nogil=True, inline="always")
def _at(off: Int, c: Int, h: Int, k: Int) -> Int:
    """Arena position of a ring's k-th kept event (0 = the head), for k < c."""
    j = h + k
    if j >= c:
        j -= c
    return off + j


@njit(cache=True, nogil=True)
def _count_upto(ev_time: np.ndarray, off: Int, c: Int, h: Int, lo: Int, hi: Int, x: Int) -> Int:
    """How many of a time-ordered ring's events are at or before `x`, knowing that the
    first `lo` are and that none from `hi` on is (binary search)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if ev_time[_at(off, c, h, mid)] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def _frauds_in_first(
    ev_fraud: np.ndarray, ev_cum: np.ndarray, off: Int, c: Int, h: Int, k: Int
) -> Int:
    """Fraud labels among a ring's first k events: `cum` holds running counts, and the
    count before the head is its own minus its label, so expiry and drops need no upkeep."""
    if k == 0:
        return 0
    before_head = np.int64(ev_cum[off + h]) - np.int64(ev_fraud[off + h])
    return np.int64(ev_cum[_at(off, c, h, k - 1)]) - before_head


@njit(cache=True, nogil=True, inline="always")
def _place(
    ev_time: np.ndarray, ev_key: np.ndarray, off: Int, c: Int, h: Int, n: Int, t: Int, key: Int
) -> tuple[Int, Int]:
    """Where an event at t goes in a time-ordered ring (after every kept event at or before
    t), and the place of the event with this key already held at t (-1 if none: an event
    delivered again has its own time, so it is among the events at t if it is held)."""
    k_at = (
        n
        if n == 0 or ev_time[_at(off, c, h, n - 1)] <= t
        else _count_upto(ev_time, off, c, h, 0, n, t)
    )
    k = k_at - 1
    while k >= 0 and ev_time[_at(off, c, h, k)] == t:
        if ev_key[_at(off, c, h, k)] == key:
            return k_at, k
        k -= 1
    return k_at, -1


@njit(cache=True, nogil=True, inline="always")
def _room_at(
    col_a: np.ndarray,
    col_b: np.ndarray,
    col_c: np.ndarray,
    col_d: np.ndarray,
    link: np.ndarray,
    free_head: np.ndarray,
    top: np.ndarray,
    offset: np.ndarray,
    cap: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    overflow: np.ndarray,
    s: Int,
    max_cap: Int,
    n: Int,
    k_at: Int,
) -> tuple[bool, Int, Int, Int, Int, Int]:
    """Room for one more event in row s's time-ordered ring (`_room_for_one` when it is
    full; `link` is `col_c` seen as int32) and where the event at `k_at` goes then (one
    place back when the oldest made room). Returns (done, offset, cap, head, length,
    k_at); done is False when the arena has no block to grow into."""
    if n < cap[s]:
        return True, offset[s], np.int64(cap[s]), np.int64(head[s]), n, k_at
    done, off, c, h, m = _room_for_one(
        col_a, col_b, col_c, col_d, link, 2, free_head, top,
        offset, cap, head, length, overflow, s, max_cap,
    )  # fmt: skip
    if done and m < n and k_at > 0:
        k_at -= 1
    return done, off, c, h, m, k_at


@njit(cache=True, nogil=True)
def terminal_step(
    ev_time: np.ndarray,
    ev_fraud: np.ndarray,
    ev_key: np.ndarray,
    ev_cum: np.ndarray,
    link: np.ndarray,
    free_head: np.ndarray,
    top: np.ndarray,
    offset: np.ndarray,
    cap: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    overflow: np.ndarray,
    max_cap: Int,
    kinds: np.ndarray,
    slots: np.ndarray,
    times: np.ndarray,
    keys: np.ndarray,
    labels: np.ndarray,
    delay_ms: np.int64,
    out: np.ndarray,
    found: np.ndarray,
    start: Int,
) -> Int:
    """Walk a mixed stream of transactions (kind 0) and label events (kind 1) for terminals,
    and reads (kind 2): a transaction's features without recording it.

    A transaction at t gets, for n in 1, 7, 30 days, the count of the terminal's transactions
    in (t - (n + delay), t - delay] and the share of those labelled fraud, and the label of
    the newest of the 30-day ones (fraud if any at that time is; 0 if there are none), then
    is recorded unlabelled, unless its key is already held at that time (`found[i]` then
    says so: a transaction delivered again is recorded once). A label event sets (not adds)
    the label of the recorded transaction with the same key, so a repeated label counts
    once; `found[i]` says whether it was still kept. Labels are used only for transactions
    older than the delay, so an early label waits and a late one counts from its arrival.

    A terminal's ring is kept in time order (an out-of-order transaction is put in its
    place; ties stay in arrival order) with a running count of fraud labels (`cum`), so a
    transaction's windows are four binary searches, not a walk over the ring: a merchant's
    terminal holding hundreds of thousands of events answers in microseconds. Only a label
    walks the ring, to find its transaction. `link` is `ev_key` seen as int32 (2 per slot):
    freed blocks are linked through it. Returns the number of events done, as `user_step`
    does.
    """
    horizon = WINDOW_LONG + delay_ms
    for i in range(start, slots.shape[0]):
        s = slots[i]
        t = times[i]
        off = offset[s]
        c: Int = np.int64(cap[s])
        h: Int = np.int64(head[s])
        n: Int = np.int64(length[s])
        if kinds[i] == 1:
            found[i] = False
            for k in range(n):
                p = _at(off, c, h, k)
                if ev_key[p] == keys[i]:
                    found[i] = True
                    change = np.int64(labels[i]) - np.int64(ev_fraud[p])
                    if change != 0:
                        ev_fraud[p] = labels[i]
                        for m in range(k, n):
                            ev_cum[_at(off, c, h, m)] += change
            continue

        reading = kinds[i] == READ
        if not reading:
            h, n = _expire(ev_time, 0, off, c, h, n, t - horizon)
            head[s] = h
            length[s] = n

        upper = t - delay_ms
        k_upper = _count_upto(ev_time, off, c, h, 0, n, upper)
        k_long = _count_upto(ev_time, off, c, h, 0, k_upper, upper - WINDOW_LONG)
        k_mid = _count_upto(ev_time, off, c, h, k_long, k_upper, upper - WINDOW_MID)
        k_short = _count_upto(ev_time, off, c, h, k_mid, k_upper, upper - WINDOW_SHORT)
        f_upper = _frauds_in_first(ev_fraud, ev_cum, off, c, h, k_upper)
        c30 = k_upper - k_long
        c7 = k_upper - k_mid
        c1 = k_upper - k_short
        f30 = f_upper - _frauds_in_first(ev_fraud, ev_cum, off, c, h, k_long)
        f7 = f_upper - _frauds_in_first(ev_fraud, ev_cum, off, c, h, k_mid)
        f1 = f_upper - _frauds_in_first(ev_fraud, ev_cum, off, c, h, k_short)
        last = 0
        if c30 > 0:
            k = k_upper - 1
            newest = ev_time[_at(off, c, h, k)]
            while k >= 0 and ev_time[_at(off, c, h, k)] == newest:
                fr = ev_fraud[_at(off, c, h, k)]
                if fr > last:
                    last = fr
                k -= 1
        out[i, T_COUNT_SHORT] = c1
        out[i, T_RISK_SHORT] = f1 / c1 if c1 > 0 else 0.0
        out[i, T_COUNT_MID] = c7
        out[i, T_RISK_MID] = f7 / c7 if c7 > 0 else 0.0
        out[i, T_COUNT_LONG] = c30
        out[i, T_RISK_LONG] = f30 / c30 if c30 > 0 else 0.0
        out[i, TERMINAL_LAST_LABEL] = last

        k_at, at_t = _place(ev_time, ev_key, off, c, h, n, t, keys[i])
        held = at_t >= 0
        if reading or held:
            found[i] = held
            continue

        done, off, c, h, n, k_at = _room_at(
            ev_time, ev_fraud, ev_key, ev_cum, link, free_head, top, offset, cap, head,
            length, overflow, s, max_cap, n, k_at,
        )  # fmt: skip
        if not done:
            return i
        before: Int = 0
        if n > 0:
            before = np.int64(ev_cum[off + h]) - np.int64(ev_fraud[off + h])
        # shift the later events one place on, then write t in its place
        for m in range(n, k_at, -1):
            dst = _at(off, c, h, m)
            src = _at(off, c, h, m - 1)
            ev_time[dst] = ev_time[src]
            ev_fraud[dst] = ev_fraud[src]
            ev_key[dst] = ev_key[src]
            ev_cum[dst] = ev_cum[src]
        p = _at(off, c, h, k_at)
        ev_time[p] = t
        ev_fraud[p] = 0
        ev_key[p] = keys[i]
        ev_cum[p] = before if k_at == 0 else ev_cum[_at(off, c, h, k_at - 1)]
        length[s] = n + 1
    return slots.shape[0]


@njit(cache=True, nogil=True)
def link_step(
    ev_time: np.ndarray,
    ev_card: np.ndarray,
    ev_key: np.ndarray,
    ev_prev: np.ndarray,
    link: np.ndarray,
    free_head: np.ndarray,
    top: np.ndarray,
    offset: np.ndarray,
    cap: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    overflow: np.ndarray,
    max_cap: Int,
    slots: np.ndarray,
    times: np.ndarray,
    cards: np.ndarray,
    keys: np.ndarray,
    earlier: np.ndarray,
    out: np.ndarray,
    found: np.ndarray,
    start: Int,
) -> Int:
    """Record each transaction in its link's ring (a device, IP address, email, or a card's
    merchant country) and compute its link features as of its own place there.

    A ring is kept in time order (ties in arrival order). A transaction at t is put after
    every kept event at or before t, then gets, over the events up to and including it:
    how many are in (t - 1 h, t] and (t - 1 d, t], how many distinct cards those hold, and
    (where `earlier[i]`: the entities whose features use it) how many earlier events in
    (t - 30 d, t) are of its own card. A transaction whose key the ring already holds at t
    (delivered again) is not recorded twice: it gets the same features as of its recorded
    place, and `found[i]` says so.

    Distinct cards are counted without a set: each event keeps `prev`, the time of the
    nearest event of the same card before it in the ring (looked for a day back; further
    is as good as none), so an event is its card's first in a window when its `prev` is
    outside it: one pass over the window (a shared IP address's busy day costs
    microseconds, not a sort). `prev` is derived: checkpoints leave it out and a restore
    recomputes it. `link` is `ev_key` seen as int32 (free blocks are linked through it).
    Returns the number of events done, as `user_step` does.
    """
    for i in range(start, slots.shape[0]):
        s = slots[i]
        t = times[i]
        card = cards[i]
        off = offset[s]
        c: Int = np.int64(cap[s])
        h: Int = np.int64(head[s])
        n: Int = np.int64(length[s])
        h, n = _expire(ev_time, 0, off, c, h, n, t - WINDOW_LONG)
        head[s] = h
        length[s] = n
        k_at, held = _place(ev_time, ev_key, off, c, h, n, t, keys[i])
        found[i] = held >= 0
        if held < 0:
            done, off, c, h, n, k_at = _room_at(
                ev_time, ev_card, ev_key, ev_prev, link, free_head, top, offset, cap, head,
                length, overflow, s, max_cap, n, k_at,
            )  # fmt: skip
            if not done:
                return i
            prev = NO_TIME  # the card's nearest event before this one, a day back at most
            k = k_at - 1
            while k >= 0:
                p = _at(off, c, h, k)
                if ev_time[p] <= t - MS_PER_DAY:
                    break
                if ev_card[p] == card:
                    prev = ev_time[p]
                    break
                k -= 1
            for m in range(n, k_at, -1):  # the later events one place on
                dst = _at(off, c, h, m)
                src = _at(off, c, h, m - 1)
                ev_time[dst] = ev_time[src]
                ev_card[dst] = ev_card[src]
                ev_key[dst] = ev_key[src]
                ev_prev[dst] = ev_prev[src]
            p = _at(off, c, h, k_at)
            ev_time[p] = t
            ev_card[p] = card
            ev_key[p] = keys[i]
            ev_prev[p] = prev
            n += 1
            length[s] = n
            for m in range(k_at + 1, n):  # out of order: the card's next event follows it now
                q = _at(off, c, h, m)
                if ev_time[q] >= t + MS_PER_DAY:
                    break
                if ev_card[q] == card:
                    ev_prev[q] = t
                    break
            held = k_at
        upto = held + 1  # the events up to and including this transaction
        day_start = t - MS_PER_DAY
        hour_start = t - MS_PER_HOUR
        k_day = _count_upto(ev_time, off, c, h, 0, upto, day_start)
        k_hour = _count_upto(ev_time, off, c, h, k_day, upto, hour_start)
        cards_day = 0
        cards_hour = 0
        for k in range(k_day, upto):
            p = _at(off, c, h, k)
            if ev_prev[p] <= day_start:
                cards_day += 1
            if k >= k_hour and ev_prev[p] <= hour_start:
                cards_hour += 1
        out[i, L_COUNT_HOUR] = upto - k_hour
        out[i, L_COUNT_DAY] = upto - k_day
        out[i, L_CARDS_HOUR] = cards_hour
        out[i, L_CARDS_DAY] = cards_day
        same = 0
        if earlier[i]:
            k_month = _count_upto(ev_time, off, c, h, 0, upto, t - WINDOW_LONG)
            for k in range(k_month, held):
                p = _at(off, c, h, k)
                if ev_card[p] == card and ev_time[p] < t:
                    same += 1
        out[i, L_CARD_EARLIER] = same
    return slots.shape[0]


@njit(cache=True, nogil=True)
def pack_rings(
    src: np.ndarray,
    dst: np.ndarray,
    offset: np.ndarray,
    cap: np.ndarray,
    head: np.ndarray,
    length: np.ndarray,
    new_offset: np.ndarray,
) -> None:
    """Copy every ring's kept events, oldest first, from one arena column to another at
    `new_offset` (compaction: a straight copy loop, no index arrays)."""
    for s in range(new_offset.shape[0]):
        if length[s] > 0:
            j: Int = np.int64(head[s])
            c: Int = np.int64(cap[s])
            a = offset[s]
            d = new_offset[s]
            for k in range(length[s]):
                dst[d + k] = src[a + j]
                j += 1
                if j == c:
                    j = 0
