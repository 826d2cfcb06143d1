"""python -m benchmarks <suite> [options]: offline, pipeline, service, recovery, checkpoints,
compare, stream, memory, access, cpu, stages, floor, simulate, ablation, degraded."""

from __future__ import annotations

import sys


def main() -> None:
    suites = {
        "offline": "benchmarks.offline",
        "pipeline": "benchmarks.pipeline",
        "service": "benchmarks.service",
        "recovery": "benchmarks.recovery",
        "checkpoints": "benchmarks.checkpoints",
        "compare": "benchmarks.compare",
        "floor": "benchmarks.floor",
        "stream": "benchmarks.stream",
        "memory": "benchmarks.memory",
        "access": "benchmarks.access",
        "cpu": "benchmarks.cpu",
        "stages": "benchmarks.stages",
        "simulate": "benchmarks.simulate",
        "ablation": "benchmarks.ablation",
        "degraded": "benchmarks.degraded",
    }
    if len(sys.argv) < 2 or sys.argv[1] not in suites:
        print(f"usage: python -m benchmarks {{{','.join(suites)}}} [options]")
        raise SystemExit(2)
    module = __import__(suites[sys.argv[1]], fromlist=["main"])
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
