"""Templates render what a marketer wrote, refuse what would reach a customer half-filled or
reach into the system, and escape what goes into HTML."""

from __future__ import annotations

import pytest

from wayline.connectors.templates import MessageTemplate, TemplateError, context
from wayline.schemas.examples import examples

PROFILE = examples("profiles")["snapshot"]
TRIGGER = examples("triggers")["cart_abandoned"]


def test_a_cart_reminder_renders_from_the_profile_and_the_trigger() -> None:
    template = MessageTemplate(
        {
            "subject": "{{ payload['items'] | length }} items are waiting",
            "text": "Hi {{ profile.traits.first_name | default('there') }}, "
            "your cart is worth ${{ '%.2f' | format(payload.value) }}.",
            "html": "<p>{{ data.trigger }}</p><a href='{{ unsubscribe_url }}'>unsubscribe</a>",
        }
    )
    rendered = template.render(context(PROFILE, TRIGGER, "https://shop.example/u/tok"))
    assert rendered.subject == "2 items are waiting"
    assert rendered.text is not None
    assert rendered.text.endswith("your cart is worth $98.50.")
    assert rendered.html == (
        "<p>cart_abandoned</p><a href='https://shop.example/u/tok'>unsubscribe</a>"
    )


def test_html_is_escaped_and_text_is_not() -> None:
    profile = {**PROFILE, "traits": {"first_name": "<b>Ada</b> & co"}}
    template = MessageTemplate(
        {"text": "{{ profile.traits.first_name }}", "html": "{{ profile.traits.first_name }}"}
    )
    rendered = template.render(context(profile, TRIGGER))
    assert rendered.text == "<b>Ada</b> & co"
    assert rendered.html == "&lt;b&gt;Ada&lt;/b&gt; &amp; co"


@pytest.mark.parametrize(
    ("parts", "part", "problem"),
    [
        ({"text": "Hi {{ customer.name }}"}, "text", "unknown variable 'customer'"),
        ({"subject": "{% if %}"}, "subject", "line 1"),
        ({"body": "x"}, "body", "not a template part"),
        ({}, "template", "has no parts"),
    ],
)
def test_a_template_that_cannot_work_is_refused_when_compiled(
    parts: dict[str, str], part: str, problem: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        MessageTemplate(parts)
    assert caught.value.part == part
    assert problem in caught.value.problem


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    template = MessageTemplate({"text": "Hello {{ profile.traits.nickname }}!"})
    with pytest.raises(TemplateError, match="nickname"):
        template.render(context(PROFILE, TRIGGER))


@pytest.mark.parametrize(
    "source",
    [
        "{{ profile.__class__.__mro__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{{ payload.items.__globals__ }}",
        "{{ profile.update({'x': 1}) }}",  # immutable: no writes into the profile
    ],
)
def test_the_sandbox_keeps_templates_out_of_the_system(source: str) -> None:
    template = MessageTemplate({"text": source})
    with pytest.raises(TemplateError):
        template.render(context(PROFILE, TRIGGER))
