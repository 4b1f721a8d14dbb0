"""Unsubscribe links are opaque and cannot be forged; Twilio signatures are computed as the
twilio library's own validator computes and accepts them."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from wayline.connectors.consent import consent_event
from wayline.connectors.links import Links, Recipient
from wayline.consentapi import twilio_signature


def test_a_link_names_its_recipient_and_reveals_nothing() -> None:
    links = Links("secret-one", "https://shop.example")
    ada = Recipient("p_1", "email", "ada@example.com")
    token = links.token(ada)
    assert links.read(token) == ada
    assert "ada" not in token
    assert "example" not in token
    assert links.unsubscribe_url("p_1", "email", "ada@example.com").startswith(
        "https://shop.example/v1/unsubscribe/"
    )


def test_a_tampered_or_foreign_link_is_refused() -> None:
    token = Links("secret-one", "https://x").token(Recipient("p_1", "email", "a@example.com"))
    assert Links("secret-two", "https://x").read(token) is None
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert Links("secret-one", "https://x").read(flipped) is None
    assert Links("secret-one", "https://x").read("not-a-token") is None


@given(
    st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12),
        st.text(max_size=40),
        max_size=8,
    ),
    st.sampled_from(["https://shop.example/v1/sources/sms/twilio/inbound", "http://h:8080/p?q=1"]),
)
def test_twilio_signatures_match_the_reference_validator(form: dict[str, str], url: str) -> None:
    token = "auth-token-123"
    ours = twilio_signature(token, url, form)
    assert ours == RequestValidator(token).compute_signature(url, form)
    assert RequestValidator(token).validate(url, form, ours)


def test_the_same_click_is_one_event() -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    later = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)
    first = consent_event("Unsubscribed", "ada@example.com", at, "one_click", "tok")
    again = consent_event("Unsubscribed", "ada@example.com", later, "one_click", "tok")
    assert first["messageId"] == again["messageId"]
    assert first["properties"]["consent"] == {"email": False}
    stop = consent_event("SMS Opted Out", "+14155550132", at, "twilio_inbound", "SM1")
    assert stop["context"]["traits"] == {"phone": "+14155550132"}
    assert stop["properties"]["consent"] == {"sms": False}
