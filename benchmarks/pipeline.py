"""The deciding path's own CPU per transaction, in one process: no Ray, no HTTP.

`ScoringPipeline` over in-process card and terminal shards (`LocalShardClient`, memory
journals), the committed default model through ONNX Runtime (exact TreeSHAP reasons for the
rows it flags) and the desk recording every batch. What is left out is exactly the hops, so
a change to the pipeline, the shards, the desk or their records shows here first, before the
noise of a whole service.

python -m benchmarks pipeline [--batches 10] [--batch 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np

from actors.client.local import LocalShardClient
from benchmarks.common import save
from deployments.http.schemas import TransactionIn
from deployments.model.versions import ModelVersions, Scored, onnx_loader
from deployments.scoring.pipeline import ScoringPipeline
from policy.decision import Thresholds

T0 = 1_527_811_200  # 2018-06-01, the handbook's time range


class Model:
    """`ModelBackend` on the default model, in this process."""

    def __init__(self) -> None:
        self.versions = ModelVersions(onnx_loader())
        self.versions.load("models/default")

    async def score(self, x: np.ndarray) -> Scored:
        return self.versions.score_many([x])[0]

    async def explain(self, x: np.ndarray, approx: bool = False) -> tuple[np.ndarray, str]:
        return self.versions.explain(x, approx)


def batches(k: int, n: int, seed: int = 1) -> list[list[TransactionIn]]:
    """k requests of n transactions: 20,000 cards, 5,000 terminals, a minute apart."""
    rng = np.random.default_rng(seed)
    return [
        [
            TransactionIn(
                transaction_id=f"b{b}-{i}",
                user_id=f"card-{rng.integers(20_000)}",
                terminal_id=f"term-{rng.integers(5_000)}",
                amount=round(float(rng.gamma(2.0, 30.0)) + 0.01, 2),
                timestamp=T0 + b * 60 + i * 0.01,
            )
            for i in range(n)
        ]
        for b in range(k)
    ]


async def one_run(k: int, n: int) -> dict[str, float]:
    client = LocalShardClient(4, 2)
    pipeline = ScoringPipeline(client, Model(), Thresholds(), sink=client.sink)
    requests = batches(k + 2, n)
    for warm in requests[:2]:  # kernels compiled, explainer tables built
        await pipeline.score(warm)
    cpu, wall = time.process_time(), time.perf_counter()
    flagged = 0
    for request in requests[2:]:
        answers = await pipeline.score(request)
        flagged += sum(a.decision != "LEGIT" for a in answers)
    tx = k * n
    return {
        "cpu_us_per_tx": (time.process_time() - cpu) / tx * 1e6,
        "wall_us_per_tx": (time.perf_counter() - wall) / tx * 1e6,
        "flagged_share": flagged / tx,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=10, help="measured requests per run")
    ap.add_argument("--batch", type=int, default=4_096, help="transactions per request")
    ap.add_argument("--repeats", type=int, default=3, help="runs, each on fresh state")
    args = ap.parse_args(argv)
    runs = [asyncio.run(one_run(args.batches, args.batch)) for _ in range(args.repeats)]
    cpu = [r["cpu_us_per_tx"] for r in runs]
    print(
        f"pipeline, {args.batch:,}-transaction requests: CPU per transaction median "
        f"{statistics.median(cpu):.1f} us (runs: {', '.join(f'{c:.1f}' for c in cpu)}); "
        f"flagged {runs[0]['flagged_share']:.2%}"
    )
    save(
        "pipeline",
        {"batches": args.batches, "batch": args.batch, "runs": runs,
         "cpu_us_per_tx_median": statistics.median(cpu)},
    )  # fmt: skip


if __name__ == "__main__":
    main()
