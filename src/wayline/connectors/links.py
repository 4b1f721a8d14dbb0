"""One-click unsubscribe links: an opaque, authenticated token per recipient.

The token is the recipient (profile id, channel, address) encrypted and signed with Fernet
(``cryptography``), so a link reveals nothing of the address it stands for and cannot be made
up or altered. Every process that writes links (the delivery worker) or reads them (the API)
needs the same secret: ``WAYLINE_LINK_SECRET``, or one generated once into the data directory
when Wayline runs on one machine.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken


@dataclass(frozen=True)
class Recipient:
    profile_id: str
    channel: str
    address: str


class Links:
    def __init__(self, secret: str, public_url: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        self._fernet = Fernet(key)
        self.public_url = public_url.rstrip("/")

    def token(self, recipient: Recipient) -> str:
        plain = orjson.dumps([recipient.profile_id, recipient.channel, recipient.address])
        return self._fernet.encrypt(plain).decode()

    def read(self, token: str) -> Recipient | None:
        """The recipient of a token this secret made; None for anything else."""
        try:
            profile_id, channel, address = orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, TypeError):
            return None
        return Recipient(str(profile_id), str(channel), str(address))

    def unsubscribe_url(self, profile_id: str, channel: str, address: str) -> str:
        token = self.token(Recipient(profile_id, channel, address))
        return f"{self.public_url}/v1/unsubscribe/{token}"


def link_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, else the one kept in ``data_dir`` (made on first use)."""
    if configured:
        return configured
    path = data_dir / "link-secret"
    if path.exists():
        return path.read_text("utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text("utf-8").strip()
    try:
        os.write(descriptor, made.encode())
    finally:
        os.close(descriptor)
    return made
