"""The browser session: a signed cookie, and the CSRF token derived from it.

The cookie holds no secret and nothing a visitor could use elsewhere: a random ``nonce``, the
expiry and, once signed in, the ids of the account and of the API token the visitor signed in
with. It is ``payload.signature``, both base64url, the signature an HMAC-SHA256 under a key
derived from the server's secret key (``STORESYNC_SECRET_KEY``, or the key file in the data
directory), so it cannot be forged or altered. It is ``HttpOnly`` (scripts cannot read it),
``SameSite=Lax`` (other sites' forms do not carry it) and ``Secure`` over HTTPS.

Every session, signed in or not, has a nonce; the CSRF token of the session is an HMAC of it,
put in every form (and in the ``X-CSRF-Token`` header of the page's own requests) and
compared in constant time. Signing in starts a new session with a new nonce, so a token seen
before signing in is worthless after it.

A signed-in session is also recorded on the server (table ``web_sessions``, by the SHA-256 of
its nonce; see :mod:`storesync.web.signin`): signing out deletes the record, so the cookie,
wherever it was copied, signs no one in afterwards although its signature is still good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from storesync.settings import Settings
from storesync.storage.crypto import SecretBox

COOKIE = "storesync_session"
#: How long a session lasts without signing in again.
SESSION_SECONDS = 7 * 24 * 3600
#: How long an anonymous session (the sign-in form's CSRF token) lasts.
ANONYMOUS_SECONDS = 2 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid cookie says. ``account_id`` is None until the visitor signs in."""

    nonce: str
    expires: int
    account_id: int | None = None
    token_id: int | None = None

    @property
    def signed_in(self) -> bool:
        return self.account_id is not None and self.token_id is not None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(nonce=secrets.token_urlsafe(16), expires=int(time.time()) + ANONYMOUS_SECONDS)

    @classmethod
    def for_account(cls, account_id: int, token_id: int) -> Session:
        return cls(
            nonce=secrets.token_urlsafe(16),
            expires=int(time.time()) + SESSION_SECONDS,
            account_id=account_id,
            token_id=token_id,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"n": self.nonce, "e": self.expires}
        if self.signed_in:
            data.update(a=self.account_id, t=self.token_id)
        return data


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs and checks session cookies and CSRF tokens with one server key."""

    def __init__(self, key: bytes) -> None:
        self._session_key = hmac.new(key, b"storesync web session v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(key, b"storesync web csrf v1", hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionSigner:
        """The signer keyed by the server's secret key (the key file is created if needed)."""
        if settings.secret_key is not None:
            material = settings.secret_key.get_secret_value().encode()
        else:
            SecretBox.from_settings(settings)  # creates the key file on first use
            material = settings.key_file.read_bytes().strip()
        return cls(material)

    def dumps(self, session: Session) -> str:
        """The cookie value for ``session``."""
        payload = _b64(json.dumps(session.to_json(), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def loads(self, value: str | None) -> Session | None:
        """The session of a cookie value, or None when it is absent, forged or expired."""
        if not value or value.count(".") != 1 or len(value) > 1024:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(
                nonce=str(data["n"]),
                expires=int(data["e"]),
                account_id=int(data["a"]) if "a" in data else None,
                token_id=int(data["t"]) if "t" in data else None,
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires < time.time():
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of ``session`` (what forms send back)."""
        return _b64(hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).digest())

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters (a forged token).
        expected = self.csrf_token(session).encode()
        return bool(token) and hmac.compare_digest(str(token).encode(), expected)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._session_key, payload.encode(), hashlib.sha256).digest())
