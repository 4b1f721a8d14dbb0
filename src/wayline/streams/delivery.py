"""The delivery worker: ``wayline.triggers`` → subscriptions → contact policy → connectors →
``wayline.deliveries``.

Per trigger, each matching subscription (a ``Route``) is one delivery with a deterministic id
(trigger id + subscription). It is decided against the profile as it is *now* — the newest of
the contact points the trigger carried and those on ``wayline.profiles`` — and the outcome goes
to ``wayline.deliveries``: suppressed, held out, capped and deferred at once; a send once the
connector answered (sent, delivered, retrying, failed, exhausted).

At most once per delivery id: the ledger entry "sending" is committed (changelog acknowledged)
with the batch *before* the connector is called (``after_commit``); the call's result is
recorded by a later batch (``refresh``). A worker that dies in between leaves "sending" behind:
its successor records the delivery as failed (``interrupted``) and never calls again, since the
message may have gone out. Deferred sends and retries wait on durable timers and are decided
again when due, so an opt-out that arrives meanwhile cancels them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from wayline.connectors.consent import consent_event, consent_headers
from wayline.connectors.dispatch import Dispatcher, Job, Result
from wayline.connectors.retries import RetrySchedule
from wayline.connectors.templates import TemplateError, context
from wayline.connectors.webhook import Attempt
from wayline.profiles.view import iso
from wayline.schemas.topics import Topics
from wayline.segments.policy import Contact, ContactPolicy, Request, decide
from wayline.streams.envelope import Envelope, Output
from wayline.streams.ledger import LEDGER, SENT, Entry, Ledger, RecordQueue, SendHistory
from wayline.streams.metrics import DELIVERIES
from wayline.streams.routes import (
    Live,
    Profiles,
    Route,
    Unsubscribe,
    contact_now,
    delivery_id,
)
from wayline.streams.task import Task, TaskContext
from wayline.streams.timers import Timer

log = logging.getLogger(__name__)
SENT_BY_PROVIDER = ("email", "sms")  # accepted for delivery: "sent"; the others "delivered"
INTERRUPTED = "the worker stopped during the call; not tried again, it may have arrived"


class DeliveryStep:
    def __init__(
        self,
        topics: Topics,
        routes: Sequence[Route],
        policy: ContactPolicy,
        profiles: Profiles,
        dispatcher: Dispatcher,
        retries: RetrySchedule | None = None,
        unsubscribe: Unsubscribe | None = None,
        live: Live | None = None,
    ) -> None:
        self.topics = topics
        self.routes = {r.name: r for r in routes}
        self.policy = policy
        self.live = live
        self._generation = -1
        self.profiles = profiles
        self.dispatcher = dispatcher
        self.retries = retries or RetrySchedule()
        self.unsubscribe = unsubscribe
        self.keep_ms = _longest_cap(policy)
        self._pending: list[Job] = []
        self._tasks: dict[int, Task] = {}  # the task objects whose "sending" marks were checked
        self._counts: Counter[str] = Counter()
        self.stop_event = threading.Event()

    def counters(self) -> dict[str, int]:
        return {**self._counts, "in_flight": self.dispatcher.busy}

    # -- lifecycle (``streams.envelope.Lifecycle``) ---------------------------------------------

    def open(self, stop: threading.Event) -> None:
        """Start the connectors' loop and read ``wayline.profiles`` to its end: nothing is
        decided on contact points older than what the topic holds."""
        self.stop_event = stop
        self.dispatcher.start()
        if not self.routes and self.live is None:
            return  # nothing is ever decided: no need for the profiles
        self.profiles.start()
        waited = 0
        while not self.profiles.wait_ready(1.0) and not stop.is_set():
            waited += 1
            if waited % 30 == 0:
                log.info("deliver: still reading %s to its end (%d s)", self.topics.profiles,
                         waited)  # fmt: skip

    def quiesce(self) -> None:
        self.dispatcher.drain()  # calls under way finish; the last batch records them

    def close(self) -> None:
        self.dispatcher.close()
        if self.routes or self.live is not None:
            self.profiles.stop()

    # -- the step chain -----------------------------------------------------------------------

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        trigger = orjson.loads(message.value or b"")
        data = trigger["data"]
        kind, segment = str(data["trigger"]), (data.get("payload") or {}).get("segment")
        ledger = Ledger(ctx.store(LEDGER))
        for route in self.routes.values():
            if not route.matches(kind, segment):
                continue
            did = delivery_id(str(trigger["id"]), route.name)
            if ledger.get(did) is not None:
                self._counts["replayed"] += 1  # decided already: a replay or a re-sent trigger
                continue
            entry = Entry("new", route=route.name, first_ms=ctx.wall_ms, trigger=trigger)
            self._decide(did, entry, route, ctx)
        return []  # the decisions' records go out with the next batch (``RecordQueue``)

    def on_timer(self, timer: Timer, ctx: TaskContext) -> list[Output]:
        did = timer.key.decode()
        entry = Ledger(ctx.store(LEDGER)).get(did)
        if entry is None or entry.status not in ("deferred", "retrying"):
            return []
        route = self.routes.get(entry.route)
        if route is None:
            self._close(did, entry, "failed", "subscription_removed", ctx)
        else:
            self._decide(did, entry, route, ctx)
        return []

    def refresh(self, ctx: TaskContext) -> list[Output]:
        """Outcomes of connector calls since the last batch; on a task's first batch, the calls
        an earlier worker started and never recorded."""
        self._follow()
        outputs = RecordQueue(ctx.store(LEDGER)).drain()  # what the last batch decided
        if self._tasks.get(ctx.partition) is not ctx.task:
            self._tasks[ctx.partition] = ctx.task
            ledger = Ledger(ctx.store(LEDGER))
            for did in ledger.sending():
                entry = ledger.get(did)
                if entry is not None and not self.dispatcher.known(did):
                    self._close(did, entry, "failed", "interrupted", ctx, INTERRUPTED)
        for result in self.dispatcher.results(ctx.partition):
            self._record(result, ctx)
        return outputs

    def _follow(self) -> None:
        """Switch to the subscriptions and policy published since the last batch."""
        if self.live is None:
            return
        generation, routes, policy = self.live()
        if generation != self._generation:
            if self._generation >= 0:
                log.info("deliver: %d subscriptions now (generation %d)", len(routes), generation)
            self._generation = generation
            self.routes = {r.name: r for r in routes}
            self.policy, self.keep_ms = policy, _longest_cap(policy)

    def after_commit(self) -> None:
        """The batch's "sending" entries are acknowledged: now call the connectors."""
        pending, self._pending = self._pending, []
        for job in pending:
            if not self.dispatcher.submit(job, self.stop_event):
                return  # stopping: the rest stays "sending" and is recorded as interrupted

    def abort_batch(self) -> None:
        self._pending = []

    # -- deciding -----------------------------------------------------------------------------

    def _decide(self, did: str, entry: Entry, route: Route, ctx: TaskContext) -> None:
        trigger = entry.trigger or {}
        found = contact_now(trigger, self.profiles)
        if found is None:
            self._close(did, entry, "suppressed", "profile_deleted", ctx)
            return
        contact, profile = found
        if (why := ctx.store(LEDGER).get(b"x:" + route.channel.encode())) is not None:
            self._close(did, entry, "failed", "endpoint_disabled", ctx, why.decode())
            return
        history = SendHistory(ctx.store(SENT), self.keep_ms)
        sent = history.times(contact.profile_id)
        if entry.slot_ms is not None:  # a retry: its own reservation does not count against it
            sent = {ch: [t for t in ts if t != entry.slot_ms] for ch, ts in sent.items()}
        request = Request(did, route.name, route.channel_type, route.kind, entry.first_ms,
                          route.holdout_pct)  # fmt: skip
        decision = decide(self.policy, request, contact, sent, ctx.wall_ms)
        retrying = entry.status == "retrying"
        if decision.outcome == "deferred":
            assert decision.release_at_ms is not None
            status = "retrying" if retrying else "deferred"
            self._wait(did, entry, status, decision.reason, decision.release_at_ms, ctx)
        elif decision.outcome == "send" or (retrying and decision.outcome != "suppressed"):
            self._send(did, entry, route, contact, profile, ctx)
        else:
            self._close(did, entry, decision.outcome, decision.reason, ctx)

    # -- outcomes -----------------------------------------------------------------------------

    def _send(
        self,
        did: str,
        entry: Entry,
        route: Route,
        contact: Contact,
        profile: dict[str, Any],
        ctx: TaskContext,
    ) -> None:
        trigger = entry.trigger or {}
        to = {"email": contact.email, "sms": contact.phone}.get(route.channel_type)
        link = None
        if self.unsubscribe and route.kind == "marketing" and to:
            link = self.unsubscribe(contact.profile_id, route.channel_type, to)
        rendered = None
        if route.template is not None and route.channel_type != "webhook":
            try:
                rendered = route.template.render(context(profile, trigger, link or ""))
            except TemplateError as exc:
                self._close(did, entry, "failed", "template", ctx, str(exc))
                return
        if route.kind == "marketing" and entry.slot_ms is None:
            SendHistory(ctx.store(SENT), self.keep_ms).reserve(
                contact.profile_id, route.channel_type, ctx.wall_ms
            )
            entry.slot_ms, entry.slot_profile = ctx.wall_ms, contact.profile_id
        entry.status, entry.attempt = "sending", entry.attempt + 1
        entry.attempted_ms = ctx.wall_ms
        Ledger(ctx.store(LEDGER)).put(did, entry)
        body = orjson.dumps(trigger) if route.channel_type == "webhook" else b""
        self._pending.append(Job(ctx.partition, did, route.target, to, rendered, body, link))

    def _record(self, result: Result, ctx: TaskContext) -> None:
        did, attempt = result.job.delivery_id, result.attempt
        ledger = Ledger(ctx.store(LEDGER))
        entry = ledger.get(did)
        if entry is None or entry.status != "sending":
            return  # recorded already (by the worker that owned the partition meanwhile)
        route = self.routes.get(entry.route)
        channel_type = route.channel_type if route else "webhook"
        why = _reason(attempt, channel_type)
        if attempt.outcome == "delivered":
            status = "sent" if channel_type in SENT_BY_PROVIDER else "delivered"
            self._close(did, entry, status, why, ctx, attempt.reason)
            return
        if attempt.outcome == "retry":
            delay = self.retries.next_delay(did, entry.attempt, attempt.retry_after_s)
            if delay is not None:
                release = ctx.wall_ms + int(delay * 1000)
                self._wait(did, entry, "retrying", why, release, ctx, attempt.reason)
                return
            self._dead_letter(did, entry, attempt.reason, ctx)
            self._close(did, entry, "exhausted", why, ctx, attempt.reason)
            return
        if why == "opted_out" and result.job.to:  # the provider knows of a STOP we had not seen
            self._opted_out(result.job.to, did, ctx)
        if attempt.outcome == "disabled" and route is not None:
            ctx.store(LEDGER).put(b"x:" + route.channel.encode(), attempt.reason.encode())
            log.warning("channel %s disabled: %s", route.channel, attempt.reason)
        self._close(did, entry, "failed", why, ctx, attempt.reason)

    def _wait(
        self,
        did: str,
        entry: Entry,
        status: str,
        reason: str,
        release_ms: int,
        ctx: TaskContext,
        detail: str | None = None,
    ) -> None:
        entry.status = status
        Ledger(ctx.store(LEDGER)).put(did, entry)
        ctx.timers.schedule(did.encode(), release_ms)
        self._publish(did, entry, status, reason, ctx, release_ms, detail)

    def _close(
        self,
        did: str,
        entry: Entry,
        status: str,
        reason: str,
        ctx: TaskContext,
        detail: str | None = None,
    ) -> None:
        self._publish(did, entry, status, reason, ctx, None, detail)
        never_sent = status not in ("sent", "delivered") and reason != "interrupted"
        route = self.routes.get(entry.route)
        if never_sent and entry.slot_ms is not None and route is not None:
            SendHistory(ctx.store(SENT), self.keep_ms).release(
                entry.slot_profile, route.channel_type, entry.slot_ms
            )
        entry.status = status
        Ledger(ctx.store(LEDGER)).put(did, entry)

    def _publish(
        self,
        did: str,
        entry: Entry,
        status: str,
        reason: str,
        ctx: TaskContext,
        release_ms: int | None,
        detail: str | None,
    ) -> None:
        trigger = entry.trigger or {}
        data = trigger.get("data") or {}
        route = self.routes.get(entry.route)
        self._counts[status] += 1
        channel_type = route.channel_type if route else "webhook"
        DELIVERIES.labels(entry.route, channel_type, status, reason).inc()
        record = {
            "delivery_id": did,
            "trigger_id": trigger.get("id", ""),
            "trigger": data.get("trigger", ""),
            "subscription": entry.route,
            "channel": route.channel if route else "",
            "channel_type": channel_type,
            "kind": route.kind if route else "marketing",
            "profile_id": data.get("profile_id") or trigger.get("subject", ""),
            "status": status,
            "final": status not in ("deferred", "retrying"),
            "reason": reason,
            "attempt": entry.attempt,
            "at": iso(ctx.wall_ms),
            "release_at": iso(release_ms) if release_ms is not None else None,
            "attempted_at": iso(entry.attempted_ms) if entry.attempt else None,
            "detail": detail[:500] if detail else None,
        }
        RecordQueue(ctx.store(LEDGER)).put(self.topics.deliveries, did, record)

    def _opted_out(self, number: str, did: str, ctx: TaskContext) -> None:
        at = datetime.fromtimestamp(ctx.wall_ms / 1000, UTC)
        event = consent_event("SMS Opted Out", number, at, "provider_error_21610", did)
        headers = {k: v.decode() for k, v in consent_headers("SMS Opted Out")}
        RecordQueue(ctx.store(LEDGER)).put(self.topics.raw, number, event, headers)

    def _dead_letter(self, did: str, entry: Entry, why: str, ctx: TaskContext) -> None:
        headers = {
            "wayline.dlq.reason": "delivery_exhausted",
            "wayline.dlq.detail": why[:4096],
            "wayline.delivery.id": did,
            "wayline.delivery.subscription": entry.route,
        }
        queue = RecordQueue(ctx.store(LEDGER))
        queue.put(self.topics.deliveries_dlq, did, entry.trigger, headers)


def _longest_cap(policy: ContactPolicy) -> int:
    """How long send times are kept for the caps to count."""
    return max((c.window_ms for p in policy.channels.values() for c in p.caps), default=0)


def _reason(attempt: Attempt, channel_type: str) -> str:
    """A short code: http_503, smtp_550, address_refused, connection_failed, opted_out …"""
    head = attempt.reason.split(":", 1)[0]
    if head.isidentifier() and head.islower() and "_" in head:  # named: opted_out, …
        return head
    if attempt.status is not None:
        return f"{'smtp' if channel_type == 'email' else 'http'}_{attempt.status}"
    return head.lower().replace(" ", "_")
