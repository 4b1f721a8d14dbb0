"""The worker registry: worker name → input topics, step chain, stores, dead-letter policy.

Workers are data. Nothing registers itself at import time; ``default_registry()`` builds the
table and ``wayline worker NAME`` / ``wayline up`` look names up in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from wayline.connectors.clickhouse import Queries
from wayline.connectors.dispatch import Dispatcher
from wayline.profiles.identity import IdentityRules
from wayline.schemas.errors import ConfigError
from wayline.schemas.topics import Topics
from wayline.segments.compiler import Compiled
from wayline.segments.triggers import TriggerConfig
from wayline.streams.analytics import AnalyticsStep
from wayline.streams.clients import KafkaConfig
from wayline.streams.dedupe import Dedupe
from wayline.streams.definitions import Rules
from wayline.streams.delivery import DeliveryStep
from wayline.streams.identity import IdentityStep
from wayline.streams.order import OrderBuffer
from wayline.streams.profile import ProfileStep
from wayline.streams.profileview import ProfileView
from wayline.streams.routes import DeliverySetup
from wayline.streams.steps import Processor
from wayline.streams.validate import ValidateStep
from wayline.streams.worker import Worker, WorkerOptions

ANALYTICS_INPUTS = ("events.resolved", "triggers", "deliveries", "segments", "profiles", "identity")


@dataclass(frozen=True)
class WorkerContext:
    """What a worker's step chain may depend on."""

    topics: Topics
    kafka: KafkaConfig
    phone_region: str | None = None
    options: WorkerOptions = field(default_factory=WorkerOptions)
    identity_rules: IdentityRules = field(default_factory=IdentityRules)
    segments: Compiled | None = None
    triggers: TriggerConfig | None = None
    definitions: Callable[[], Rules] | None = None  # the latest from wayline.definitions
    reorder_window_ms: int = 600_000  # replay mode: disorder within a raw partition put right
    reorder_idle_ms: int = 5_000  # replay mode: raw input quiet this long holds nothing back
    delivery: DeliverySetup = field(default_factory=DeliverySetup)
    warehouse: Callable[[], Queries] | None = None  # ClickHouse, for the analytics sink
    database: str = "wayline"


def _validate(c: WorkerContext) -> ValidateStep:
    quiet_after = c.reorder_idle_ms if c.options.clock == "replay" else None
    return ValidateStep(c.topics, "validate", c.phone_region, quiet_after)


def _identity(c: WorkerContext) -> IdentityStep:
    order = None
    if c.options.clock == "replay":
        order = OrderBuffer(c.reorder_window_ms, c.topics.partitions)
    return IdentityStep(c.topics, c.identity_rules, dedupe=Dedupe(), order=order)


def _deliver(c: WorkerContext) -> DeliveryStep:
    setup = c.delivery
    return DeliveryStep(
        c.topics,
        setup.routes,
        setup.policy,
        ProfileView(c.kafka, c.topics.profiles),
        Dispatcher(setup.in_flight),
        setup.retries,
        setup.unsubscribe,
        setup.live,
    )


def _analytics(c: WorkerContext) -> AnalyticsStep:
    if c.warehouse is None:
        raise ConfigError("setting WAYLINE_ANALYTICS: the analytics worker needs ClickHouse")
    return AnalyticsStep(c.topics, c.warehouse, c.database)


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    description: str
    inputs: Callable[[Topics], list[str]]
    build: Callable[[WorkerContext], Processor]
    dead_letter: Callable[[Topics], str] | None = None
    stores: tuple[str, ...] = ()
    wall_clock_only: bool = False  # timers on the wall clock even when the others replay

    def create(self, context: WorkerContext) -> Worker:
        """A worker for this spec; its stores' changelogs are ``{prefix}.changelog.NAME.STORE``
        (the first store is the primary, which carries the commit markers)."""
        options = context.options
        if self.wall_clock_only:
            options = replace(options, clock="live", grace_ms=0)
        return Worker(
            name=self.name,
            group=f"{context.topics.prefix}.{self.name}",
            inputs=self.inputs(context.topics),
            processor=self.build(context),
            kafka=context.kafka,
            dead_letter_topic=self.dead_letter(context.topics) if self.dead_letter else None,
            options=options,
            changelogs={store: context.topics.changelog(self.name, store) for store in self.stores},
        )


def default_registry() -> dict[str, WorkerSpec]:
    """Every worker Wayline runs, in pipeline order."""
    specs = [
        WorkerSpec(
            name="validate",
            description="events.raw → events (validated, normalized); invalid → dlq",
            inputs=lambda t: [t.raw],
            build=_validate,
            dead_letter=lambda t: t.dlq,
        ),
        WorkerSpec(
            name="identity",
            description="events → deduped, in event-time order (replay) → events.resolved "
            "(keyed by profile id); merge log → identity",
            inputs=lambda t: [t.events],
            build=_identity,
            dead_letter=lambda t: t.dlq,
            stores=("graph", "dedupe", "order", "timers"),
        ),
        WorkerSpec(
            name="profile",
            description="events.resolved → profiles; segments and triggers (timers for absence)",
            inputs=lambda t: [t.resolved],
            build=lambda c: ProfileStep(c.topics, c.segments, c.triggers, c.definitions),
            dead_letter=lambda t: t.dlq,
            stores=("profiles", "forwards", "parked", "timers"),
        ),
        WorkerSpec(
            name="deliver",
            description="triggers → subscriptions, contact policy, connectors → deliveries "
            "(exhausted → deliveries.dlq)",
            inputs=lambda t: [t.triggers],
            build=_deliver,
            dead_letter=lambda t: t.dlq,
            stores=("ledger", "sent", "timers"),
            wall_clock_only=True,
        ),
        WorkerSpec(
            name="analytics",
            description="every output topic → ClickHouse tables (idempotent inserts)",
            inputs=lambda t: [t.name(s) for s in ANALYTICS_INPUTS],
            build=_analytics,
            dead_letter=lambda t: t.dlq,
        ),
    ]
    return {spec.name: spec for spec in specs}


def store_topics(registry: dict[str, WorkerSpec]) -> dict[str, list[str]]:
    """``{worker: [store, ...]}`` for creating changelog topics."""
    return {name: list(spec.stores) for name, spec in registry.items() if spec.stores}
