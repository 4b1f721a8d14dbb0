"""One contract for every connector, run against a real server of its kind through the
dispatcher the delivery worker uses: a message is delivered with its content; a transient
failure is reported as retry; no more than the limit are in flight (a slow receiver slows the
caller down, nothing queues without bound); the delivery id reaches the receiver where the
protocol has a place for it; close leaves nothing open or hanging."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs

import orjson
import pytest

from receivers import LOCAL, HttpReceiver, Mailbox, smtp_receiver
from wayline.connectors.dispatch import Dispatcher, Job, Result, SlackTarget, Target
from wayline.connectors.email import SmtpServer
from wayline.connectors.sms import SmsAccount
from wayline.connectors.templates import Rendered
from wayline.connectors.webhook import WebhookEndpoint

pytestmark = pytest.mark.timeout(60)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TEXT = Rendered("Your cart", "3 items are waiting", None)


@dataclass
class Kind:
    """One connector against its server: targets that work, fail for now, or take a second,
    and what the server got (the text of each message, and the delivery id where it travels)."""

    name: str
    target: Callable[[str], Target]  # "ok" | "transient" | "slow" → target
    to: Callable[[str], str | None]
    got: Callable[[], list[tuple[str, str | None]]]


@pytest.fixture(params=["webhook", "email", "sms", "slack"])
def kind(request: pytest.FixtureRequest, receiver: HttpReceiver) -> Iterator[Kind]:
    if request.param == "email":
        with smtp_receiver() as (box, server):
            yield _email(box, server)
        return
    yield {"webhook": _webhook, "sms": _sms, "slack": _slack}[request.param](receiver)


def _webhook(receiver: HttpReceiver) -> Kind:
    paths = {"ok": "/ok", "transient": "/status/503", "slow": "/ok?delay=1"}

    def got() -> list[tuple[str, str | None]]:
        return [(orjson.loads(r.body)["data"]["text"], r.headers.get("webhook-id"))
                for r in receiver.received if r.path == "/ok"]  # fmt: skip

    return Kind("webhook", lambda how: WebhookEndpoint(receiver.url + paths[how], (SECRET,), LOCAL,
                                                       timeout_s=10),
                lambda _how: None, got)  # fmt: skip


def _email(box: Mailbox, server: SmtpServer) -> Kind:
    addresses = {"ok": "ada@example.com", "transient": "full@example.com", "slow": "slow@x.io"}

    def got() -> list[tuple[str, str | None]]:
        return [(str(m.get_body(("plain",)).get_content()).strip(),  # type: ignore[union-attr]
                 str(m["Message-ID"]).strip("<>").split("@")[0]) for m in box.messages]  # fmt: skip

    return Kind("email", lambda _how: server, lambda how: addresses[how], got)


def _sms(receiver: HttpReceiver) -> Kind:
    numbers = {"ok": "+15550000001", "transient": "+15550000429", "slow": "+15550000002"}

    def target(how: str) -> Target:
        base = receiver.url + ("/slow" if how == "slow" else "")
        return SmsAccount("AC123", "token", "+15550100", base, LOCAL)

    def got() -> list[tuple[str, str | None]]:
        forms = [parse_qs(r.body.decode()) for r in receiver.received
                 if r.path.endswith("/Messages.json")]  # fmt: skip
        return [(f["Body"][0], None) for f in forms if f["To"][0] != numbers["transient"]]

    return Kind("sms", target, lambda how: numbers[how], got)


def _slack(receiver: HttpReceiver) -> Kind:
    paths = {"ok": "/ok", "transient": "/status/429?retry_after=1", "slow": "/ok?delay=1"}

    def got() -> list[tuple[str, str | None]]:
        return [(orjson.loads(r.body)["text"], None) for r in receiver.received if r.path == "/ok"]

    return Kind("slack", lambda how: SlackTarget(receiver.url + paths[how], LOCAL),
                lambda _how: None, got)  # fmt: skip


def job(kind: Kind, how: str, delivery_id: str) -> Job:
    body = orjson.dumps({"type": "wayline.trigger.cart_abandoned", "data": {"text": TEXT.text}})
    rendered = None if kind.name == "webhook" else TEXT
    return Job(0, delivery_id, kind.target(how), kind.to(how), rendered, body)


def run(jobs: list[Job], limit: int = 8) -> list[Result]:
    dispatcher = Dispatcher(limit=limit)
    dispatcher.start()
    try:
        for each in jobs:
            dispatcher.submit(each)
        assert dispatcher.drain(30)
        return dispatcher.results(0)
    finally:
        dispatcher.close()


def test_delivers_the_message_with_its_id(kind: Kind) -> None:
    results = run([job(kind, "ok", f"dlv-{kind.name}-{i}") for i in range(5)])
    assert [r.attempt.outcome for r in results] == ["delivered"] * 5
    got = kind.got()
    assert sorted(text for text, _ in got) == [TEXT.text] * 5
    ids = [ident or "" for _, ident in got]
    if kind.name in ("webhook", "email"):  # the protocol has a place for it: the receiver dedupes
        assert sorted(ids) == sorted(f"dlv-{kind.name}-{i}" for i in range(5))


def test_a_transient_failure_is_a_retry(kind: Kind) -> None:
    (result,) = run([job(kind, "transient", "dlv-t")])
    assert result.attempt.outcome == "retry", result.attempt
    assert kind.got() == []


def test_no_more_than_the_limit_in_flight(kind: Kind) -> None:
    """Six one-second calls with room for two: submit waits, and it takes three rounds."""
    dispatcher = Dispatcher(limit=2)
    dispatcher.start()
    most = 0
    watching = threading.Event()

    def watch() -> None:
        nonlocal most
        while not watching.is_set():
            most = max(most, dispatcher.busy)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        for i in range(6):
            dispatcher.submit(job(kind, "slow", f"dlv-s{i}"))
        submitted = time.monotonic() - started
        assert dispatcher.drain(30)
        took = time.monotonic() - started
    finally:
        watching.set()
        watcher.join()
        dispatcher.close()
    assert most == 2
    assert submitted >= 1.8  # the caller was held back while the receiver was slow
    assert took >= 2.8


def test_close_abandons_what_is_in_flight_without_hanging(kind: Kind) -> None:
    dispatcher = Dispatcher(limit=4)
    dispatcher.start()
    dispatcher.submit(job(kind, "slow", "dlv-c"))
    started = time.monotonic()
    dispatcher.close()
    assert time.monotonic() - started < 6
    dispatcher.close()  # twice is harmless
    assert not [t for t in threading.enumerate() if t.name == "dispatch"]
