"""A broken config or setting stops start-up with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from segment_examples import EXAMPLE_SEGMENTS
from wayline.config.workspace import load_config, parse_config
from wayline.schemas.errors import ConfigError
from wayline.settings import load_settings

GOOD = """
sources:
  - name: web
    channel: web
    write_keys: [wk_web_1]
    rate_limit_per_s: 2000
  - name: store
    channel: store
    write_keys: [wk_store_1, wk_store_2]
api_keys: [ak_admin_1]
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, origin="wayline.yaml")
    return str(info.value)


def test_the_documented_config_loads() -> None:
    config = parse_config(GOOD)
    assert [s.name for s in config.sources] == ["web", "store"]
    assert config.sources[0].rate_limit_per_s == 2000
    assert config.sources[1].rate_limit_per_s is None
    assert config.api_keys == ["ak_admin_1"]
    source = config.source_for_key("wk_store_2")
    assert source is not None
    assert source.channel == "store"
    assert config.source_for_key("nope") is None


def test_empty_file_is_an_empty_config() -> None:
    assert parse_config("").sources == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("channel: web", "channel: tv"), "wayline.yaml: sources[0].channel: Input"),
        (
            GOOD.replace("rate_limit_per_s: 2000", "rate_limit_per_s: -5"),
            "sources[0].rate_limit_per_s",
        ),
        (GOOD.replace("write_keys: [wk_web_1]", "write_keys: []"), "sources[0].write_keys"),
        (GOOD.replace("write_keys: [wk_web_1]", "write_keys: [short]"), "sources[0].write_keys[0]"),
        (GOOD.replace("name: store", "name: web"), "sources[1].name: duplicate source name 'web'"),
        (
            GOOD.replace("wk_store_2", "wk_web_1"),
            "sources[1].write_keys: key is already used by source 'web'",
        ),
        (GOOD + "segmnets: []\n", "wayline.yaml: segmnets: unknown key"),
        (
            GOOD.replace("    rate_limit", "    rate_limt"),
            "sources[0].rate_limt_per_s: unknown key",
        ),
        (GOOD.replace("name: web", "name: Web Site"), "sources[0].name"),
        ("sources: {web: 1}", "sources: Input should be a valid list"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("sources: [\n", "not valid YAML at line"),
        (
            "segments:\n  - {name: vip, rule: {all: [{computed.revenue: {gte: 5}}, {x: 1}]}}\n",
            "segments[0] (vip): rule.all[1].x: unknown condition 'x'",
        ),
        (
            "segments:\n  - {name: a, rule: {performed: {event: X, within: 3 weeks}}}\n",
            "segments[0] (a): rule.performed.within: expects a duration such as 30d",
        ),
        ("triggers: {cart_abandoned: {after: soon}}", "triggers.cart_abandoned.after"),
        ("triggers: {churn: {}}", "triggers.churn: unknown key"),
    ],
)
def test_errors_name_the_key(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "wayline.yaml"
    path.write_text(GOOD)
    assert len(load_config(path).sources) == 2


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAYLINE_KAFKA_BOOTSTRAP", raising=False)
    settings = load_settings()
    assert settings.embedded_broker
    assert settings.bootstrap == "127.0.0.1:9092"
    assert settings.topic_prefix == "wayline"
    monkeypatch.setenv("WAYLINE_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("WAYLINE_KAFKA_OPTIONS", '{"security.protocol": "SASL_SSL"}')
    settings = load_settings()
    assert not settings.embedded_broker
    assert settings.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.kafka_options == {"security.protocol": "SASL_SSL"}


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.api_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("WAYLINE_API_PORT", "http", "setting WAYLINE_API_PORT: Input should be a valid integer"),
        ("WAYLINE_BROKER_PORT", "70000", "setting WAYLINE_BROKER_PORT"),
        ("WAYLINE_TOPIC_PREFIX", "bad prefix!", "setting WAYLINE_TOPIC_PREFIX"),
        ("WAYLINE_PARTITIONS", "0", "setting WAYLINE_PARTITIONS"),
        ("WAYLINE_LOG_LEVEL", "LOUD", "setting WAYLINE_LOG_LEVEL"),
        ("WAYLINE_KAFKA_OPTIONS", "{not json", "WAYLINE_KAFKA_OPTIONS"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_segments_and_triggers_as_documented() -> None:
    config = parse_config(
        "clock: replay"
        + EXAMPLE_SEGMENTS
        + """
triggers:
  cart_abandoned:   {after: 60m}
  browse_abandoned: {views: 2, after: 4h}
  churn_risk:       {factor: 2.0, min_orders: 3, floor: 14d}
  milestones:       {orders: [1, 3, 10], revenue: [100, 1000], birthday: true, anniversary: true}
"""
    )
    compiled = config.compiled_segments()
    assert [s.name for s in compiled.segments] == ["vip", "lapsed_shoe_buyers"]
    assert compiled.by_name["vip"].notify
    triggers = config.triggers.config()
    assert triggers.cart_after_ms == 3_600_000
    assert (triggers.browse_views, triggers.browse_after_ms) == (2, 4 * 3_600_000)
    assert (triggers.churn, triggers.churn_factor, triggers.churn_floor_ms) == (
        True,
        2.0,
        14 * 86_400_000,
    )
    assert triggers.milestone_orders == (1, 3, 10)
    assert (triggers.birthday, triggers.anniversary) == (True, True)


CHANNELS = """
triggers: {cart_abandoned: {after: 30m}}
segments:
  - {name: vip, notify: true, rule: {computed.revenue: {gte: 500}}}
channels:
  - {name: mail, type: email, host: localhost, port: 2525, tls: none, from: shop@example.com}
  - {name: crm, type: webhook, url: "https://crm.example/h",
     secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}
subscriptions:
  - name: cart
    channel: mail
    triggers: [cart_abandoned]
    holdout_pct: 10
    template: {subject: "Hi {{ profile.traits.first_name }}", text: "{{ payload.value }}"}
  - {name: vip_to_crm, channel: crm, kind: transactional, segments: {entered: [vip]}}
contact_policy:
  control_group_pct: 5
  channels:
    email: {caps: [{count: 2, within: 1d}]}
    sms: {quiet_hours: null}
"""


def test_channels_subscriptions_and_contact_policy_as_documented() -> None:
    config = parse_config(CHANNELS)
    assert [c.name for c in config.channels] == ["mail", "crm"]
    assert [(s.name, s.kind, s.holdout_pct) for s in config.subscriptions] == [
        ("cart", "marketing", 10),
        ("vip_to_crm", "transactional", 0),
    ]
    policy = config.contact_policy.policy()
    assert policy.control_group_pct == 5
    assert [(c.count, c.window_ms) for c in policy.channels["email"].caps] == [(2, 86_400_000)]
    sms = policy.channels["sms"]
    assert sms.quiet_hours is None  # turned off
    assert [c.count for c in sms.caps] == [1, 3]  # the defaults that were not overridden
    assert sms.opt_in_required


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[cart_abandoned]", "[churn_risk]"), "subscriptions[0].triggers[0]: unknown trigger"),
        (("entered: [vip]", "entered: [whales]"), "subscriptions[1].segments.entered[0]"),
        (("channel: mail", "channel: fax"), "subscriptions[0].channel: unknown channel 'fax'"),
        (("first_name }}", "first_name.x.y }}"), "subscriptions[0].template.subject:"),
        (("name: crm", "name: mail"), "channels[1].name: duplicate channel name 'mail'"),
        (("tls: none", "tls: maybe"), "channels[0].email.tls:"),
        (("count: 2", "count: 0"), "contact_policy.channels.email.caps[0].count:"),
        (("sms: {quiet_hours: null}", "sms: {quiet_hours: {start: '25:00', end: '8:00'}}"),
         "contact_policy.channels.sms.quiet_hours.start:"),
        (("control_group_pct: 5", "default_timezone: Mars/Olympus"),
         "contact_policy.default_timezone: not an IANA time zone"),
        (("holdout_pct: 10", "holdout_pct: 101"), "subscriptions[0].holdout_pct:"),
    ],
)  # fmt: skip
def test_channel_and_subscription_errors_name_the_key(
    change: tuple[str, str], expected: str
) -> None:
    text = CHANNELS.replace(*change)
    assert text != CHANNELS
    assert expected in error_of(text)
