"""What the security layer costs: the access check per request and keyed hashing per id.

Side by side in one process, each the median of `--repeats` runs:
- `Access.check` on a scoring request with no keys configured, with a key file, and with
  a key file and a rate limit (the `limits` moving window, in memory);
- finding the route a request is served by (`deployments.http.routes.RouteFinder`, what the
  guard authorises) on the ingress's real route table: a repeated path (the cache's hit,
  every scoring request) and a path seen once (a stored decision's lookup by id);
- the blake2b loop over a request's ids, keyed (what the service does) and unkeyed (a
  personalisation string only), and `IdHasher.keys_many` whole (digests, base64, keys);
- `keys_many` on one request's ids (1 to 128), id by id against the array pass: where
  `features.ids.VECTOR_FROM` switches between them.

python -m benchmarks access [--requests 20000] [--ids 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import save
from deployments.http.access import Access, KeyRing, RateLimits, Scope, Sessions, add_key
from features.ids import IdHasher


def per_call_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=20_000, help="checks per run")
    ap.add_argument("--ids", type=int, default=10_000, help="ids hashed per run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    keys = Path(tempfile.mkdtemp()) / "keys.json"
    key = add_key(keys, "bench", {Scope.score})
    sessions = Sessions(b"s" * 32, 10)
    guards = {
        "no_keys": Access(KeyRing(None), sessions, RateLimits("memory://", None)),
        "keys": Access(KeyRing(keys), sessions, RateLimits("memory://", None)),
        "keys_and_rate_limit": Access(
            KeyRing(keys), sessions, RateLimits("memory://", "1000000000/second")
        ),
    }

    def checking(guard: Access) -> Callable[[], object]:
        return lambda: guard.check("POST", "/v1/transactions", key, None)

    check_us = {
        name: per_call_us(checking(g), args.requests, args.repeats) for name, g in guards.items()
    }
    from deployments.http.ingress import app as ingress_app
    from deployments.http.routes import RouteFinder, ambiguous

    finder, n = RouteFinder(ingress_app.router), iter(range(10**9))

    def repeated() -> object:
        return ambiguous("/v1/transactions") or finder.find("POST", "/v1/transactions")

    def once() -> object:
        path = f"/v1/transactions/tx-{next(n)}"
        return ambiguous(path) or finder.find("GET", path)

    route_us = {
        "repeated_path": per_call_us(repeated, args.requests, args.repeats),
        "new_path": per_call_us(once, args.requests, args.repeats),
    }
    ids = [f"card-{i}" for i in range(args.ids)]
    hasher, secret = IdHasher(bytes(range(32))), bytes(range(32))

    def keyed() -> bytes:
        h = hashlib.blake2b
        return b"".join([h(v.encode(), digest_size=16, key=secret).digest() for v in ids])

    def unkeyed() -> bytes:
        h = hashlib.blake2b
        return b"".join([h(v.encode(), digest_size=16, person=b"fraud-id").digest() for v in ids])

    def whole() -> object:
        return hasher.keys_many(ids)

    import features.ids as ids_module

    def by_size(n: int, vector_from: int) -> float:
        some, saved = ids[:n], ids_module.VECTOR_FROM
        ids_module.VECTOR_FROM = vector_from
        try:
            return per_call_us(lambda: hasher.keys_many(some), 2_000, args.repeats)
        finally:
            ids_module.VECTOR_FROM = saved

    keys_many_us = {  # one request's ids: one at a time against the array pass, by count
        str(n): {"scalar": by_size(n, n + 1), "array": by_size(n, 0)} for n in (1, 8, 32, 128)
    }
    samples: dict[str, list[float]] = {"keyed_digests": [], "unkeyed": [], "keys_many": []}
    for _ in range(args.repeats * 4):  # alternating, so noise falls on all three alike
        for name, fn in zip(samples, (keyed, unkeyed, whole), strict=True):
            samples[name].append(per_call_us(fn, 1, 1) / args.ids)
    hash_us = {name: statistics.median(v) for name, v in samples.items()}
    for name, us in check_us.items():
        print(f"access check per request, {name}: {us:.2f} us")
    for name, us in route_us.items():
        print(f"route lookup per request, {name}: {us:.2f} us")
    for name, us in hash_us.items():
        print(f"id hashing per id, {name}: {us:.3f} us")
    for count, both in keys_many_us.items():
        scalar, array = both["scalar"], both["array"]
        print(f"keys_many of {count} ids: scalar {scalar:.1f} us, array {array:.1f} us")
    save(
        "access",
        {"check_us_per_request": check_us, "route_us_per_request": route_us,
         "hash_us_per_id": hash_us, "keys_many_us_by_ids": keys_many_us, **vars(args)},
    )  # fmt: skip


if __name__ == "__main__":
    main()
