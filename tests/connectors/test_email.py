"""E-mail deliveries to a real SMTP server (aiosmtpd): the message a mail client would show,
one-click unsubscribe on marketing mail, and outcomes that tell a bounce from a full mailbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from receivers import Mailbox, smtp_receiver
from wayline.connectors.email import SmtpServer, send_email
from wayline.connectors.templates import Rendered
from wayline.streams.broker import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, SmtpServer]]:
    with smtp_receiver() as found:
        yield found


RENDERED = Rendered("2 items are waiting", "Hi Ada, your cart is waiting.", "<p>Hi Ada</p>")
UNSUBSCRIBE = "https://shop.example/v1/unsubscribe/tok123"


async def test_marketing_mail_arrives_as_a_mail_client_shows_it(
    smtp: tuple[Mailbox, SmtpServer],
) -> None:
    box, server = smtp
    attempt = await send_email(server, "ada@example.com", RENDERED, "dlv_1", UNSUBSCRIBE)
    assert attempt.outcome == "delivered"
    [mail] = box.messages
    assert mail["Subject"] == "2 items are waiting"
    assert mail["To"] == "ada@example.com"
    assert mail["Message-ID"] == "<dlv_1@wayline>"
    assert mail["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().strip() == "Hi Ada, your cart is waiting."
    assert html.get_content().strip() == "<p>Hi Ada</p>"


async def test_a_receipt_has_no_unsubscribe_header(smtp: tuple[Mailbox, SmtpServer]) -> None:
    box, server = smtp
    text_only = Rendered("Your receipt", "Thanks for your order.", None)
    assert (await send_email(server, "ada@example.com", text_only, "dlv_2")).outcome == (
        "delivered"
    )
    [mail] = box.messages
    assert mail["List-Unsubscribe"] is None
    assert not mail.is_multipart()


@pytest.mark.parametrize(
    ("to", "outcome", "status"),
    [("bounce@example.com", "failed", 550), ("full@example.com", "retry", 452)],
)
async def test_a_bounce_fails_and_a_full_mailbox_is_retried(
    smtp: tuple[Mailbox, SmtpServer], to: str, outcome: str, status: int
) -> None:
    box, server = smtp
    attempt = await send_email(server, to, RENDERED, "dlv_3")
    assert (attempt.outcome, attempt.status) == (outcome, status)
    assert box.messages == []


async def test_no_server_listening_is_retried() -> None:
    server = SmtpServer("127.0.0.1", free_port(), "shop@example.com", "none", timeout_s=2)
    attempt = await send_email(server, "ada@example.com", RENDERED, "dlv_4")
    assert attempt.outcome == "retry"
