"""Validation and normalization edge cases: clock skew, missing times, bad e-mail and phone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wayline.schemas.codec import decode_raw
from wayline.schemas.errors import InvalidEvent, ReasonCode
from wayline.schemas.normalize import Origin, normalize_email, normalize_event, normalize_phone

RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)


def norm(raw: dict[str, Any], **origin: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"received_at": RECEIVED, "message_id": "gen-1", **origin}
    return normalize_event(raw, Origin(**fields))


def reject(raw: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        normalize_event(raw, Origin(RECEIVED, "gen-1"))
    return info.value


def track(**extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "userId": "u1", **extra}


class TestEventTime:
    def test_client_clock_one_hour_fast_is_corrected(self) -> None:
        out = norm(track(timestamp="2026-11-23T10:00:00Z", sentAt="2026-11-23T10:00:05Z"))
        assert out["timestamp"] == "2026-11-23T08:59:55.000Z"
        assert out["originalTimestamp"] == "2026-11-23T10:00:00.000Z"

    def test_client_clock_slow_is_corrected(self) -> None:
        raw = track(originalTimestamp="2026-11-23T07:59:50Z", sentAt="2026-11-23T08:00:00Z")
        assert norm(raw)["timestamp"] == "2026-11-23T08:59:50.000Z"

    def test_original_timestamp_wins_over_timestamp(self) -> None:
        raw = track(
            timestamp="2020-01-01T00:00:00Z",
            originalTimestamp="2026-11-23T08:59:00Z",
            sentAt="2026-11-23T09:00:00Z",
        )
        assert norm(raw)["timestamp"] == "2026-11-23T08:59:00.000Z"

    def test_without_sent_at_the_client_time_is_kept(self) -> None:
        assert norm(track(timestamp="2026-11-20T12:00:00Z"))["timestamp"] == (
            "2026-11-20T12:00:00.000Z"
        )

    def test_missing_timestamp_is_received_at(self) -> None:
        out = norm(track())
        assert out["timestamp"] == out["receivedAt"] == "2026-11-23T09:00:00.000Z"
        assert out["originalTimestamp"] is None

    def test_received_at_in_the_event_wins_over_the_kafka_time(self) -> None:
        out = norm(track(receivedAt="2026-11-23T08:00:00Z"))
        assert out["receivedAt"] == out["timestamp"] == "2026-11-23T08:00:00.000Z"

    def test_future_event_time_is_clamped_to_received_at(self) -> None:
        assert norm(track(timestamp="2027-01-01T00:00:00Z"))["timestamp"] == (
            "2026-11-23T09:00:00.000Z"
        )

    def test_wildly_wrong_client_clock_is_clamped_to_1970(self) -> None:
        raw = track(originalTimestamp="1971-01-01T00:00:00Z", sentAt="2999-01-01T00:00:00Z")
        assert norm(raw)["timestamp"] == "1970-01-01T00:00:00.000Z"

    def test_sent_before_it_happened_is_clamped(self) -> None:
        raw = track(originalTimestamp="2026-11-23T09:00:10Z", sentAt="2026-11-23T09:00:00Z")
        assert norm(raw)["timestamp"] == "2026-11-23T09:00:00.000Z"

    def test_offsets_and_naive_times_become_utc(self) -> None:
        assert norm(track(timestamp="2026-11-23T10:30:00+02:00"))["timestamp"] == (
            "2026-11-23T08:30:00.000Z"
        )
        assert norm(track(timestamp="2026-11-23T08:30:00.123456"))["timestamp"] == (
            "2026-11-23T08:30:00.123Z"
        )

    @pytest.mark.parametrize(
        "value",
        [
            "yesterday",
            "2026-13-01T00:00:00Z",
            1700000000,
            "",
            "0600-01-09T20:46:21.619Z",  # found by property-based testing: overflowed the
            "8863-07-03T22:20:06.38Z",  # clock-skew correction and crashed the worker
            "0001-01-01T00:00:00+01:00",
        ],
    )
    def test_unparseable_timestamp_is_rejected(self, value: object) -> None:
        err = reject(track(sentAt=value))
        assert err.reason is ReasonCode.INVALID_TIMESTAMP
        assert err.errors[0].path == "sentAt"


class TestIdentifiers:
    def test_email_is_trimmed_and_lower_cased(self) -> None:
        out = norm(track(context={"traits": {"email": "  Ada.L@Example.COM "}}))
        assert out["identifiers"]["email"] == "ada.l@example.com"
        assert out["context"]["traits"]["email"] == "ada.l@example.com"

    @pytest.mark.parametrize("bad", ["ada", "ada@", "a b@example.com", "@example.com", 42])
    def test_bad_email_is_kept_as_trait_but_not_an_identifier(self, bad: object) -> None:
        out = norm(track(traits={"email": bad}))
        assert out["identifiers"]["email"] is None
        assert out["traits"]["email"] == bad
        assert out["warnings"] == ["traits.email: not a valid email, not used as an identifier"]

    def test_phone_to_e164(self) -> None:
        out = norm(track(traits={"phone": "+1 (415) 555-0132"}))
        assert out["identifiers"]["phone"] == "+14155550132"

    def test_national_phone_needs_a_region(self) -> None:
        raw = track(context={"traits": {"phone": "030 90182042"}})
        assert norm(raw)["identifiers"]["phone"] is None
        assert norm(raw, phone_region="DE")["identifiers"]["phone"] == "+493090182042"

    @pytest.mark.parametrize("bad", ["not a phone", "+1 555", "12", "+999 1234567"])
    def test_bad_phone_is_not_an_identifier(self, bad: str) -> None:
        out = norm(track(traits={"phone": bad}))
        assert out["identifiers"]["phone"] is None
        assert out["warnings"] == ["traits.phone: not a valid phone, not used as an identifier"]

    def test_device_and_external_ids(self) -> None:
        raw = {
            "type": "track",
            "event": "Order Completed",
            "context": {
                "device": {"id": "dev-1"},
                "externalIds": [{"id": " L-1 ", "type": "loyalty_id", "collection": "users"}],
            },
        }
        ids = norm(raw)["identifiers"]
        assert ids["device_id"] == "dev-1"
        assert ids["external"] == [{"type": "loyalty_id", "id": "L-1"}]

    def test_numeric_user_id_becomes_a_string(self) -> None:
        assert norm(track(userId=1001))["userId"] == "1001"

    def test_blank_ids_are_absent(self) -> None:
        err = reject({"type": "page", "userId": "  ", "anonymousId": ""})
        assert err.reason is ReasonCode.MISSING_IDENTIFIER

    def test_only_an_email_is_enough(self) -> None:
        out = norm(
            {"type": "track", "event": "Email Opened", "context": {"traits": {"email": "a@b.io"}}}
        )
        assert out["identifiers"]["email"] == "a@b.io"

    def test_an_invalid_email_alone_is_not_an_identifier(self) -> None:
        err = reject({"type": "track", "event": "X", "traits": {"email": "nope"}})
        assert err.reason is ReasonCode.MISSING_IDENTIFIER


class TestShape:
    def test_message_id_generated_only_when_absent(self) -> None:
        assert norm(track())["messageId"] == "gen-1"
        assert norm(track(messageId="m-7"))["messageId"] == "m-7"

    def test_channel_from_event_then_source_then_inferred(self) -> None:
        assert (
            norm(track(context={"channel": "store"}), channel="app")["context"]["channel"]
            == "store"
        )
        assert norm(track(), channel="email")["context"]["channel"] == "email"
        assert norm(track(context={"app": {"name": "Shop"}}))["context"]["channel"] == "app"
        assert norm(track())["context"]["channel"] == "web"

    def test_source_is_recorded(self) -> None:
        assert norm(track(), source="web-eu")["source"] == "web-eu"

    def test_unknown_fields_pass_through(self) -> None:
        assert norm(track(version=2))["version"] == 2

    def test_every_failing_field_is_listed(self) -> None:
        err = reject(
            {"type": "track", "userId": ["x"], "properties": 3, "context": {"channel": "tv"}}
        )
        paths = [e.path for e in err.errors]
        assert paths == ["userId", "properties", "context.channel"]
        assert err.reason is ReasonCode.INVALID_FIELD

    @pytest.mark.parametrize(
        ("raw", "path"),
        [
            ({"type": "track", "userId": "u"}, "event"),
            ({"type": "track", "event": "  ", "userId": "u"}, "event"),
            ({"type": "alias", "userId": "u"}, "previousId"),
            ({"type": "group", "userId": "u"}, "groupId"),
            ({"userId": "u"}, "type"),
            (track(context=[1]), "context"),
            (track(context={"externalIds": [{"id": "x"}]}), "context.externalIds[0]"),
            (track(messageId=""), "messageId"),
        ],
    )
    def test_required_fields(self, raw: dict[str, Any], path: str) -> None:
        assert reject(raw).errors[0].path == path

    def test_unknown_type(self) -> None:
        assert reject({"type": "purchase", "userId": "u"}).reason is ReasonCode.UNSUPPORTED_TYPE

    def test_not_an_object(self) -> None:
        assert reject([1, 2]).reason is ReasonCode.NOT_AN_OBJECT


class TestDecode:
    def test_too_large(self) -> None:
        with pytest.raises(InvalidEvent) as info:
            decode_raw(b'{"x": "' + b"a" * 40000 + b'"}')
        assert info.value.reason is ReasonCode.EVENT_TOO_LARGE

    @pytest.mark.parametrize("payload", [b"{", b"", b"\xff\xfe", None])
    def test_not_json(self, payload: bytes | None) -> None:
        with pytest.raises(InvalidEvent) as info:
            decode_raw(payload)
        assert info.value.reason is ReasonCode.INVALID_JSON


def test_email_and_phone_helpers() -> None:
    assert normalize_email(" X@Y.Z ") == "x@y.z"
    assert normalize_email(None) is None
    assert normalize_phone("+44 20 7946 0018") == "+442079460018"
    assert normalize_phone(True) is None


@pytest.mark.parametrize(("given", "kept"), [("m-1", "m-1"), (42, "42"), (0, "0"), (-7, "-7")])
def test_a_message_id_is_kept_as_sent_or_as_the_text_of_an_integer(given: Any, kept: str) -> None:
    assert norm(track(messageId=given))["messageId"] == kept


@pytest.mark.parametrize("given", [[1, 2], {"id": 1}, True, 1.5, "", "x" * 257])
def test_a_message_id_that_is_not_a_string_or_integer_is_refused(given: Any) -> None:
    problem = reject(track(messageId=given))
    assert problem.reason is ReasonCode.INVALID_FIELD
    assert [e.path for e in problem.errors] == ["messageId"]
