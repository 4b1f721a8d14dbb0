"""Webhook deliveries: signed per the Standard Webhooks spec, and only to where they may go.

One ``WebhookSender.send`` is one attempt. The receiver gets the delivery id as
``webhook-id`` (the same on every retry, so it can drop a repeat), ``webhook-timestamp`` and
``webhook-signature`` — ``v1,<base64 HMAC-SHA256>``, one per secret while a secret is being
rotated, signed with the reference ``standardwebhooks`` library.

Server-side request forgery is refused before any connection: the host is resolved, and if
any address it resolves to is not a public unicast address (loopback, private, link-local —
169.254.169.254 included —, carrier-grade NAT, multicast, IPv4-mapped forms of those) the
attempt fails, unless the endpoint allow-lists that network (tests and local receivers). The
connection then goes to the address that was checked (the ``Host`` header and TLS name stay
the endpoint's), so a second DNS answer cannot point it elsewhere. Redirects are not followed.

The outcome says what to do next: ``delivered``; ``retry`` (a timeout, a connection error, 408,
425, 429 or 5xx; ``retry_after_s`` when the receiver said when); ``disabled`` (410 Gone: the
endpoint asked to be left alone); ``failed`` (anything else: it will not get better by trying).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class WebhookEndpoint:
    url: str
    secrets: tuple[str, ...]  # "whsec_<base64>"; every one signs (rotation)
    allow_networks: tuple[Network, ...] = ()  # private networks this endpoint may reach
    timeout_s: float = 15.0


@dataclass(frozen=True)
class Attempt:
    outcome: Literal["delivered", "retry", "disabled", "failed"]
    reason: str
    status: int | None = None
    retry_after_s: float | None = None


class AddressRefused(Exception):
    """The endpoint resolves to an address webhooks must not reach."""


def signature(secrets: Sequence[str], delivery_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,`` signature per secret, space-separated."""
    return " ".join(Webhook(secret).sign(delivery_id, at, body) for secret in secrets)


def refused(address: Address, allow: Sequence[Network]) -> str | None:
    """Why ``address`` may not be reached, or None."""
    if any(address in network for network in allow):
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return refused(mapped, allow)
    if address.is_multicast:
        return f"{address} is a multicast address"
    if not address.is_global:
        kind = "loopback" if address.is_loopback else "link-local" if address.is_link_local else (
            "private or reserved"
        )  # fmt: skip
        return f"{address} is a {kind} address"
    return None


async def checked_address(host: str, port: int, allow: Sequence[Network]) -> Address:
    """The address to connect to: every address ``host`` resolves to must be allowed."""
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise AddressRefused(f"{host} does not resolve: {exc.strerror}") from None
        found = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in found:
        why = refused(address, allow)
        if why is not None:
            raise AddressRefused(f"{host}: {why}")
    return found[0]


class WebhookSender:
    """Sends over one connection pool; ``close`` when done."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)

    async def send(
        self, endpoint: WebhookEndpoint, delivery_id: str, body: bytes, at: datetime
    ) -> Attempt:
        headers = {
            "user-agent": "Wayline-Webhooks/1",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature(endpoint.secrets, delivery_id, at, body.decode()),
        }
        posted = await self.post(endpoint.url, body, headers, endpoint.allow_networks,
                                 endpoint.timeout_s)  # fmt: skip
        if isinstance(posted, Attempt):
            return posted
        return classify(posted.status_code, posted.headers.get("retry-after"), at)

    async def post(
        self,
        target: str,
        body: bytes,
        headers: dict[str, str],
        allow: Sequence[Network],
        timeout_s: float,
    ) -> httpx.Response | Attempt:
        """POST JSON ``body`` to ``target`` at an address that was checked (see the module);
        an ``Attempt`` when it could not be sent."""
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return Attempt("failed", f"not an http(s) URL: {target}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await checked_address(parts.hostname, port, allow)
        except AddressRefused as exc:
            return Attempt("failed", f"address_refused: {exc}")
        pinned = f"[{address}]" if address.version == 6 else str(address)
        url = urlunsplit(parts._replace(netloc=f"{pinned}:{port}"))
        headers = {
            "host": parts.netloc.rsplit("@", 1)[-1],
            "content-type": "application/json",
            **headers,  # e.g. another content-type, an authorization
        }
        try:
            return await self._client.post(
                url,
                content=body,
                headers=headers,
                timeout=timeout_s,
                extensions={"sni_hostname": parts.hostname},
            )
        except httpx.TimeoutException:
            return Attempt("retry", f"no answer in {timeout_s:.0f} s")
        except httpx.TransportError as exc:
            return Attempt("retry", f"connection failed: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        await self._client.aclose()


def classify(status: int, retry_after: str | None, at: datetime) -> Attempt:
    if 200 <= status < 300:
        return Attempt("delivered", f"HTTP {status}", status)
    if status == 410:
        return Attempt("disabled", "HTTP 410: the endpoint asked to be left alone", status)
    if status in RETRYABLE:
        return Attempt("retry", f"HTTP {status}", status, _retry_after(retry_after, at))
    if 300 <= status < 400:
        return Attempt("failed", f"HTTP {status}: redirects are not followed", status)
    return Attempt("failed", f"HTTP {status}", status)


def _retry_after(value: str | None, at: datetime) -> float | None:
    """``Retry-After`` in seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - at).total_seconds())
