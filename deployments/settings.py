"""The app's settings: `args` of serve_config.yaml, validated once (extra fields refused)
and handed down as typed objects. Defaults live here only; serve_config.yaml lists the
values a deployment would change."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.actor.journal import DedupConfig, ShardSettings
from actors.actor.webhooks import WebhookSettings
from actors.store.backends import SqliteStoreConfig, StoreConfig
from actors.store.decisions import DecisionRecordConfig
from actors.tls import WireTlsConfig
from deployments.http.access import AccessConfig
from deployments.stream.contract import StreamConfig
from features.config import EngineConfig
from features.groups import DEFAULT_GROUPS
from features.id_key import IdKeyConfig
from policy.drift import DriftSettings


class MicroBatchConfig(BaseModel):
    """Concurrent single-transaction requests share shard and model calls (0 ms = off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_wait_ms: float = Field(
        20.0, ge=0, le=200, description="Longest a request waits for a free slot."
    )
    max_transactions: int = Field(512, ge=1, le=10_000)
    max_in_flight: int = Field(
        1, ge=1, le=64, description="Groups out at once per replica; more wait and go together."
    )


class AppArgs(BaseModel):
    """What a deployment decides: shard counts, batch limit, engine, state store, dedup."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Each shard a request group touches is one more message and one more process, so one
    # machine runs few (BENCHMARKS.md, "Where the CPU goes"); a cluster spreads state over
    # more (serve_config.cluster.yaml).
    n_user_shards: int = Field(2, ge=1, le=4096)
    n_terminal_shards: int = Field(1, ge=1, le=4096)
    key_groups: int = Field(
        DEFAULT_GROUPS,
        ge=1,
        le=1 << 20,
        description="Key groups cards and terminals hash to (state moves in them when shard "
        "counts change); fixed for a state store's life, at least the largest shard count.",
    )
    max_batch_transactions: int = Field(10_000, ge=1, le=100_000)
    engine: EngineConfig = EngineConfig()
    state: StoreConfig = SqliteStoreConfig()
    id_key: IdKeyConfig = IdKeyConfig()
    access: AccessConfig = AccessConfig()
    shard_tls: WireTlsConfig | None = Field(
        None, description="TLS on the shard sockets (clusters: they cross hosts)."
    )
    dedup: DedupConfig = DedupConfig()
    actor_cpus: float = Field(
        0.0,
        ge=0,
        le=64,
        description="CPUs each shard, desk and layout actor reserves: none on one machine; a "
        "little on a cluster whose head starts with `--num-cpus 0`, which keeps state off "
        "the head, so losing it costs the control plane only.",
    )
    decision_record: DecisionRecordConfig = DecisionRecordConfig()
    micro_batch: MicroBatchConfig = MicroBatchConfig()
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings,
        description="Signed deliveries of the desk's events to your URLs "
        "(actors/actor/webhooks.py).",
    )
    drift: DriftSettings = Field(
        default_factory=DriftSettings,
        description="How scores and features are compared with each model's first "
        "transactions (policy/drift.py).",
    )
    stream: StreamConfig = StreamConfig()
    console_dir: str = Field(
        "console/out",
        description="The analyst console's static export the ingress serves at /dashboard "
        "(relative to the project root); an app under another route prefix builds one for its "
        "path (console/next.config.ts).",
    )
    score_in_process: bool = Field(
        True,
        description="Deciding replicas run the model the ModelScorer serves themselves "
        "(one hop fewer); false sends every batch to the ModelScorer.",
    )
    reasons: Literal["exact", "approx"] = Field(
        "exact",
        description="Reason codes for flagged rows: exact TreeSHAP (~0.45 ms for one flagged "
        "row, ~0.1 ms each in groups) or Saabas attribution (~0.03 ms; top reason differs "
        "on ~4 rows in 10).",
    )
    shard_transport: Literal["direct", "ray"] = Field(
        "direct",
        description="How deciding replicas send transactions to shards: over each shard "
        "actor's own socket (~0.5 ms a call) or as Ray actor calls (~2.3 ms).",
    )
    shard_retry_seconds: float = Field(20.0, ge=0, le=300)
    shard_call_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="A shard call unanswered this long breaks its connection and is retried "
        "(within shard_retry_seconds): a silent host costs this, not TCP's minutes.",
    )
    model_retry_seconds: float = Field(10.0, ge=0, le=300)
    deadline_ms: float = Field(
        250.0,
        gt=0,
        le=60_000,
        description="Every single-transaction answer comes within this (a client may ask for "
        "less with `x-fraud-deadline-ms`; a batch has a budget only when its client sets "
        "one): state that has not answered by then is answered without (degraded, by "
        "`fallback`) and applied once its shard is back.",
    )
    deadline_reserve_ms: float = Field(
        40.0,
        ge=0,
        le=10_000,
        description="The wait for state ends this long before the deadline (at most half "
        "the budget), for the rest of a degraded answer: the late step's note in the state "
        "store, the model, the record and the response.",
    )
    fallback: Literal["model", "LEGIT", "REVIEW", "BLOCK"] = Field(
        "model",
        description="How a degraded answer is decided: the model on the features it has "
        "(a late card's or terminal's as its first transaction's), or a fixed tier; rules and "
        "lists apply either way.",
    )

    @model_validator(mode="after")
    def _groups_cover_shards(self) -> AppArgs:
        most = max(self.n_user_shards, self.n_terminal_shards)
        if self.key_groups < most:
            raise ValueError(
                f"key_groups ({self.key_groups}) must be at least {most}, the most shards"
            )
        return self

    @property
    def shards(self) -> ShardSettings:
        """What every shard and desk actor is built from."""
        return ShardSettings(
            engine=self.engine, state=self.state, dedup=self.dedup, wire_tls=self.shard_tls,
            key_groups=self.key_groups, actor_cpus=self.actor_cpus, webhooks=self.webhooks,
        )  # fmt: skip
