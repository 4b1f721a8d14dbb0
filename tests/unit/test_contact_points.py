"""Contact points and hard suppressions as the delivery worker reads them from a profile."""

from __future__ import annotations

from typing import Any

from wayline.profiles.state import State, apply_event, empty_state, merge
from wayline.profiles.view import contact_points

N = 0


def fold(state: State, name: str, minute: int, linked: list[tuple[str, str]], **props: Any) -> None:
    global N
    N += 1
    event = {
        "type": "track",
        "event": name,
        "messageId": f"m{N}",
        "timestamp": f"2026-11-23T10:{minute:02d}:00+00:00",
        "properties": props,
        "context": {"traits": {"email": "Ada@Example.com", "phone": "+14155550132"}},
    }
    apply_event(state, event, linked)


ADA = [("email", "ada@example.com"), ("phone", "+14155550132")]


def test_addresses_come_from_the_traits_when_they_are_identifiers() -> None:
    state = empty_state()
    fold(state, "Signed Up", 1, [*ADA, ("email", "a@old.example")])
    contact = contact_points(state)
    assert (contact["email"], contact["phone"]) == ("ada@example.com", "+14155550132")
    assert contact["suppressed"] == {}
    assert contact["consent"] == {}


def test_a_hard_bounce_suppresses_that_address_only() -> None:
    state = empty_state()
    fold(state, "Signed Up", 1, ADA)
    fold(state, "Email Bounced", 2, [("email", "a@old.example")], bounce_type="bounce")
    assert contact_points(state)["suppressed"] == {}  # another address bounced
    fold(state, "Email Bounced", 3, [("email", "ada@example.com")], bounce_type="blocked")
    assert contact_points(state)["suppressed"] == {}  # a soft bounce suppresses nothing
    fold(state, "Email Bounced", 4, [("email", "ada@example.com")], bounce_type="bounce")
    fold(state, "Order Completed", 5, ADA, order_id="o1", revenue=5)
    assert contact_points(state)["suppressed"] == {"email": "bounced"}


def test_a_complaint_suppresses_and_revokes_consent() -> None:
    state = empty_state()
    fold(state, "Email Marked as Spam", 2, ADA)
    contact = contact_points(state)
    assert contact["suppressed"] == {"email": "complained"}
    assert contact["consent"] == {"email": False}


def test_sms_stop_holds_until_start_in_event_time_order() -> None:
    state = empty_state()
    fold(state, "SMS Opted Out", 10, [ADA[1]])
    fold(state, "SMS Opted In", 5, [ADA[1]])  # an older START arriving late lifts nothing
    assert contact_points(state)["suppressed"] == {"sms": "sms_stop"}
    fold(state, "SMS Opted In", 20, [ADA[1]])
    assert contact_points(state)["suppressed"] == {}


def test_suppressions_survive_a_merge_either_way() -> None:
    a, b = empty_state(), empty_state()
    fold(a, "Signed Up", 1, ADA)
    fold(b, "SMS Opted Out", 2, [ADA[1]])
    assert contact_points(merge(a, b)) == contact_points(merge(b, a))
    assert contact_points(merge(a, b))["suppressed"] == {"sms": "sms_stop"}
