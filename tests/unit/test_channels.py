"""A subscription that cannot work is refused with its path before anything is sent: an
unknown channel, trigger or segment, a missing part, a template that names what does not exist
or does not render against an example profile; channel settings are checked as they are read."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from wayline.config.channels import ChannelSpec, Subscription, check_subscriptions
from wayline.schemas.examples import examples

EXAMPLES = {"profile": examples("profiles")["snapshot"], "triggers": examples("triggers")}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CHANNELS = TypeAdapter(list[ChannelSpec]).validate_python(
    [
        {"name": "crm", "type": "webhook", "url": "https://crm.example/h", "secrets": [SECRET]},
        {"name": "mail", "type": "email", "host": "smtp.example", "from": "shop@example.com"},
        {"name": "team", "type": "slack", "url": "https://hooks.slack.com/services/x"},
    ]
)
TRIGGERS = {"cart_abandoned", "milestone", "churn_risk"}
NOTIFY = {"vip"}


def check(**sub: Any) -> None:
    base: dict[str, Any] = {"name": "s1", "channel": "mail", "triggers": ["cart_abandoned"]}
    subscription = Subscription.model_validate({**base, **sub})
    check_subscriptions(CHANNELS, [subscription], TRIGGERS, NOTIFY, EXAMPLES)


GOOD_MAIL = {"subject": "{{ payload['items'] | length }} items", "text": "Hi"}


def test_a_good_subscription_passes() -> None:
    check(template=GOOD_MAIL)
    check(channel="crm")  # a webhook gets the trigger itself: no template needed
    check(channel="team", triggers=[], segments={"entered": ["vip"]}, template={"text": "x"})


@pytest.mark.parametrize(
    ("sub", "message"),
    [
        ({"channel": "fax", "template": GOOD_MAIL}, "subscriptions[0].channel: unknown channel"),
        ({"triggers": ["cart_abandonned"]}, "subscriptions[0].triggers[0]: unknown trigger"),
        (
            {"triggers": [], "segments": {"exited": ["whales"]}, "channel": "crm"},
            "subscriptions[0].segments.exited[0]: 'whales' is not a segment with notify",
        ),
        ({"triggers": [], "channel": "crm"}, "subscriptions[0]: subscribes to nothing"),
        ({"template": {"text": "Hi"}}, "subscriptions[0].template.subject: an email message"),
        (
            {"template": {"subject": "Hi {{ customer.name }}"}},
            "subscriptions[0].template.subject: unknown variable 'customer'",
        ),
        (
            {"template": {"subject": "Hi {{ profile.traits.nickname }}"}},
            "subscriptions[0].template.subject:",
        ),
        ({"template": {"subject": "{% for %}"}}, "subscriptions[0].template.subject: line 1"),
    ],
)
def test_a_subscription_that_cannot_work_is_refused_with_its_path(
    sub: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=r"^subscriptions\[0\]") as caught:
        check(**sub)
    assert str(caught.value).startswith(message), str(caught.value)


def test_names_are_unique() -> None:
    one = Subscription(name="s1", channel="crm", triggers=["milestone"])
    with pytest.raises(ValueError, match=r"subscriptions\[1\].name: duplicate"):
        check_subscriptions(CHANNELS, [one, one], TRIGGERS, NOTIFY, EXAMPLES)


@pytest.mark.parametrize(
    "channel",
    [
        {"name": "h", "type": "webhook", "url": "https://x.example", "secrets": ["nope"]},
        {"name": "h", "type": "webhook", "url": "https://x.example", "secrets": ["whsec_YQ=="]},
        {"name": "h", "type": "webhook", "url": "https://x.example", "secrets": []},
        {"name": "h", "type": "webhook", "url": "ftp://x.example", "secrets": [SECRET]},
        {"name": "m", "type": "email", "host": "smtp.example"},  # no from
        {"name": "m", "type": "email", "host": "s", "from": "a@b", "tls": "ssl3"},
        {"name": "t", "type": "sms", "account_sid": "AC1", "from": "+1555"},  # no token
        {"name": "s", "type": "pager", "url": "https://x.example"},
        {"name": "Bad Name", "type": "slack", "url": "https://hooks.slack.com/x"},
    ],
)
def test_channel_settings_are_checked_as_they_are_read(channel: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(ChannelSpec).validate_python(channel)


def test_holdouts_are_percentages() -> None:
    with pytest.raises(ValidationError):
        Subscription(name="s", channel="crm", triggers=["milestone"], holdout_pct=120)


def test_a_template_is_rendered_against_an_example_of_each_trigger_it_subscribes_to() -> None:
    check(triggers=["churn_risk"], template={"subject": "We miss you ({{ payload.ltv }})"})
    with pytest.raises(ValueError, match=r"subscriptions\[0\].template.subject: .*cart_id"):
        check(  # a cart field: there is none in a churn-risk trigger
            triggers=["cart_abandoned", "churn_risk"],
            template={"subject": "Your cart {{ payload.cart_id }}"},
        )
