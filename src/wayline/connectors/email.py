"""E-mail deliveries over SMTP (aiosmtplib).

One ``send_email`` is one attempt. The message carries the delivery id in its ``Message-ID``
(``<delivery id@wayline>``), so a receiving system sees a repeat as one message; a text part,
and an HTML alternative when the template has one. Marketing mail carries RFC 8058 one-click
unsubscribe: ``List-Unsubscribe: <https://…/v1/unsubscribe/TOKEN>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.

Outcomes, as for every connector: ``delivered`` (the server accepted it), ``retry`` (4xx, a
connection that failed or timed out), ``failed`` (5xx for the recipient — a hard bounce the
delivery worker turns into a suppression — or a refused login: trying again will not help).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

import aiosmtplib

from wayline.connectors.templates import Rendered
from wayline.connectors.webhook import Attempt


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    tls: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 15.0


def message(
    server: SmtpServer, to: str, rendered: Rendered, delivery_id: str, unsubscribe_url: str | None
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = server.sender
    mail["To"] = to
    mail["Subject"] = rendered.subject or ""
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = f"<{delivery_id}@wayline>"
    if unsubscribe_url:
        mail["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(rendered.text or "")
    if rendered.html:
        mail.add_alternative(rendered.html, subtype="html")
    return mail


async def send_email(
    server: SmtpServer,
    to: str,
    rendered: Rendered,
    delivery_id: str,
    unsubscribe_url: str | None = None,
) -> Attempt:
    mail = message(server, to, rendered, delivery_id, unsubscribe_url)
    try:
        await aiosmtplib.send(
            mail,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.tls == "tls",
            start_tls=server.tls == "starttls",
            timeout=server.timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [error.code for error in exc.recipients]
        return _by_code(min(codes) if codes else 550, "recipient refused")
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Attempt("failed", f"login refused: {exc.code} {exc.message}", exc.code)
    except aiosmtplib.SMTPResponseException as exc:
        return _by_code(exc.code, exc.message)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Attempt("retry", f"SMTP connection failed: {type(exc).__name__}: {exc}")
    return Attempt("delivered", "accepted", 250)


def _by_code(code: int, what: str) -> Attempt:
    if 400 <= code < 500:
        return Attempt("retry", f"SMTP {code}: {what}", code)
    return Attempt("failed", f"SMTP {code}: {what}", code)
