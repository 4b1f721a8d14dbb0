"""The contact policy decides what a marketer and a customer would expect: an opt-out or a hard
suppression always wins, caps hold over any stream, quiet hours end in the customer's own zone,
holdouts are the configured share and never move, and receipts go out regardless."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayline.segments.policy import (
    DAY_MS,
    HOUR_MS,
    ChannelPolicy,
    Contact,
    ContactPolicy,
    QuietHours,
    Request,
    decide,
    default_channels,
    in_holdout,
)

POLICY = ContactPolicy()
T0 = int(datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp() * 1000)
CHANNELS = st.sampled_from(["email", "sms", "webhook", "slack"])
KINDS = st.sampled_from(["marketing", "transactional"])


def request(channel: str = "email", kind: str = "marketing", at: int = T0, **kw: object) -> Request:
    return Request(f"d-{at}", "cart", channel, kind, at, **kw)  # type: ignore[arg-type]


def reachable(**kw: object) -> Contact:
    base: dict[str, object] = {
        "profile_id": "p1",
        "email": "a@example.com",
        "phone": "+15550100",
        "timezone": "UTC",
        "consent": {"sms": True},
    }
    return Contact(**{**base, **kw})  # type: ignore[arg-type]


def ms(local: datetime) -> int:
    return int(local.timestamp() * 1000)


@given(channel=CHANNELS, kind=KINDS, why=st.sampled_from(["bounce", "complaint", "sms_stop"]))
def test_a_hard_suppression_wins_over_everything_even_a_receipt(
    channel: str, kind: str, why: str
) -> None:
    contact = reachable(suppressed={channel: why}, consent={channel: True})
    assert decide(POLICY, request(channel, kind), contact, {}, T0).outcome == "suppressed"
    everywhere = reachable(suppressed={"*": "deleted"})
    assert decide(POLICY, request(channel, kind), everywhere, {}, T0).reason == "deleted"


def test_a_receipt_skips_consent_caps_quiet_hours_and_holdouts() -> None:
    policy = ContactPolicy(control_group_pct=100.0)
    night = ms(datetime(2026, 6, 1, 23, tzinfo=UTC))
    contact = reachable(consent={"email": False, "sms": False})
    full = {"email": [night - 1], "sms": [night - 1]}
    for channel in ("email", "sms"):
        want = request(channel, "transactional", night, holdout_pct=100.0)
        assert decide(policy, want, contact, full, night).outcome == "send"


@pytest.mark.parametrize(
    ("channel", "consent", "outcome", "reason"),
    [
        ("email", {}, "send", "allowed"),  # e-mail: allowed until the profile opts out
        ("email", {"email": False}, "suppressed", "no_consent"),
        ("sms", {}, "suppressed", "no_opt_in"),  # SMS marketing needs an explicit opt-in
        ("sms", {"sms": False}, "suppressed", "no_consent"),
        ("sms", {"sms": True}, "send", "allowed"),
        ("webhook", {"webhook": False}, "suppressed", "no_consent"),
    ],
)
def test_marketing_needs_consent_and_sms_an_explicit_opt_in(
    channel: str, consent: dict[str, bool], outcome: str, reason: str
) -> None:
    decision = decide(POLICY, request(channel), reachable(consent=consent), {}, T0)
    assert (decision.outcome, decision.reason) == (outcome, reason)


def test_no_address_no_send() -> None:
    assert decide(POLICY, request("email"), reachable(email=None), {}, T0).reason == (
        "no_email_address"
    )
    assert decide(POLICY, request("sms"), reachable(phone=None), {}, T0).reason == (
        "no_phone_number"
    )


@settings(max_examples=200)
@given(
    gaps=st.lists(st.integers(0, 30 * HOUR_MS), min_size=1, max_size=60),
    channel=st.sampled_from(["email", "sms"]),
)
def test_caps_hold_exactly_over_any_stream(gaps: list[int], channel: str) -> None:
    """Every send keeps every window within its cap (checked by a scan of its own), and every
    capped request really had a full window."""
    policy = ContactPolicy(channels={**default_channels(), "sms": ChannelPolicy(
        caps=default_channels()["sms"].caps, opt_in_required=True)})  # fmt: skip
    caps = policy.channels["email" if channel == "email" else "sms"].caps
    sent: list[int] = []
    now = T0
    for gap in gaps:
        now += gap
        decision = decide(policy, request(channel, at=now), reachable(), {channel: sent}, now)
        in_window = {c: sum(1 for t in sent if now - c.window_ms < t <= now) for c in caps}
        if decision.outcome == "send":
            assert all(n < c.count for c, n in in_window.items())
            sent.append(now)
        else:
            assert decision.outcome == "frequency_capped"
            assert any(n >= c.count for c, n in in_window.items())
    for t in sent:  # no window ending at a send holds more than its cap
        for cap in caps:
            assert sum(1 for s in sent if t - cap.window_ms < s <= t) <= cap.count


@pytest.mark.parametrize(
    ("zone", "now", "release"),
    [
        ("America/New_York", (2026, 6, 1, 22, 30), (2026, 6, 2, 8, 0)),
        ("America/New_York", (2026, 6, 2, 7, 59), (2026, 6, 2, 8, 0)),
        ("Europe/Berlin", (2026, 3, 28, 23, 0), (2026, 3, 29, 8, 0)),  # the night DST begins
        ("Asia/Kolkata", (2026, 6, 1, 21, 0), (2026, 6, 2, 8, 0)),
    ],
)
def test_quiet_hours_defer_to_the_end_of_the_window_in_the_customers_zone(
    zone: str, now: tuple[int, int, int, int, int], release: tuple[int, int, int, int, int]
) -> None:
    tz = ZoneInfo(zone)
    at = ms(datetime(*now, tzinfo=tz))
    end = ms(datetime(*release, tzinfo=tz))
    decision = decide(POLICY, request("sms", at=at), reachable(timezone=zone), {}, at)
    assert decision.outcome == "deferred"
    assert decision.release_at_ms == end
    again = decide(POLICY, request("sms", at=at), reachable(timezone=zone), {}, end)
    assert again.outcome == "send"  # decided again at the release time


@settings(max_examples=300)
@given(
    minute=st.integers(0, 7 * 24 * 60),
    zone=st.sampled_from(["UTC", "America/Los_Angeles", "Europe/London", "Australia/Sydney"]),
)
def test_a_send_never_lands_in_quiet_hours(minute: int, zone: str) -> None:
    now = T0 + minute * 60_000
    decision = decide(POLICY, request("sms", at=now), reachable(timezone=zone), {}, now)
    quiet = QuietHours(time(21, 0), time(8, 0))
    local = datetime.fromtimestamp(now / 1000, UTC).astimezone(ZoneInfo(zone))
    if decision.outcome == "send":
        assert not quiet.contains(local.time())
    else:
        assert decision.outcome == "deferred"
        assert decision.release_at_ms is not None
        out = datetime.fromtimestamp(decision.release_at_ms / 1000, UTC).astimezone(ZoneInfo(zone))
        assert (out.hour, out.minute) == (8, 0)
        assert 0 < decision.release_at_ms - now <= 11 * HOUR_MS + 60_000


def test_a_deferral_past_its_expiry_is_dropped() -> None:
    tz = ZoneInfo("UTC")
    triggered = ms(datetime(2026, 6, 1, 18, tzinfo=tz))
    now = ms(datetime(2026, 6, 1, 22, tzinfo=tz))  # release at 08:00: 14 h after the trigger
    decision = decide(POLICY, request("sms", at=triggered), reachable(), {}, now)
    assert (decision.outcome, decision.reason) == ("suppressed", "deferral_expired")
    patient = ContactPolicy(max_defer_ms=DAY_MS)
    assert decide(patient, request("sms", at=triggered), reachable(), {}, now).outcome == (
        "deferred"
    )


def test_holdouts_are_the_configured_share_and_stable() -> None:
    ids = [f"profile-{i}" for i in range(20_000)]
    for pct in (5.0, 10.0, 50.0):
        share = sum(in_holdout(p, "cart", pct) for p in ids) / len(ids)
        sd = (pct / 100 * (1 - pct / 100) / len(ids)) ** 0.5
        assert abs(share - pct / 100) < 5 * sd, (pct, share)
    first = [in_holdout(p, "cart", 10.0) for p in ids]
    assert first == [in_holdout(p, "cart", 10.0) for p in ids]  # same bucket every time
    other = [in_holdout(p, "winback", 10.0) for p in ids]
    both = sum(a and b for a, b in zip(first, other, strict=True)) / len(ids)
    assert abs(both - 0.01) < 0.004  # subscriptions hold out independent groups


def test_known_buckets_do_not_move_between_releases() -> None:
    """Pinned: a change of the hash would reshuffle every running experiment."""
    held = [i for i in range(200) if in_holdout(f"p{i}", "cart", 10.0)]
    assert held == [14, 19, 28, 59, 62, 71, 78, 89, 90, 113, 114, 117, 132, 138, 141, 142, 157,
                    164, 173, 174, 181]  # fmt: skip
    assert in_holdout("p1", "cart", 100.0)
    assert not in_holdout("p1", "cart", 0.0)


def test_holdouts_come_after_consent_so_both_arms_could_have_been_contacted() -> None:
    held = next(f"p{i}" for i in range(1000) if in_holdout(f"p{i}", "cart", 50.0))
    wanting = request("email", holdout_pct=50.0)
    assert decide(POLICY, wanting, reachable(profile_id=held), {}, T0).outcome == "held_out"
    opted_out = reachable(profile_id=held, consent={"email": False})
    assert decide(POLICY, wanting, opted_out, {}, T0).outcome == "suppressed"
    control = ContactPolicy(control_group_pct=100.0)
    assert decide(control, request("email"), reachable(), {}, T0).reason == "control_group"
