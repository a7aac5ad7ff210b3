"""API tokens: `<user id>.<secret>`, of which the database keeps only the secret's SHA-256.

The id finds the row; the secret's hash is compared with hmac.compare_digest, so the time a
check takes does not tell how much of a guess was right. A token for an unknown id is
compared against a dummy hash, so unknown ids and wrong secrets take the same time too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from portraitist.service.models import User

_DUMMY_HASH = hashlib.sha256(b"no such user").hexdigest()
WRONG_TOKEN = "Missing or wrong API token: send `Authorization: Bearer <token>` (POST /v1/users gives one)."


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(user_id: str) -> tuple[str, str]:
    """A fresh token for the user, and the hash to store."""
    secret = secrets.token_urlsafe(32)
    return f"{user_id}.{secret}", hash_secret(secret)


def split_token(token: str) -> tuple[str, str]:
    """(user id, secret); empty strings when the token has no id part."""
    user_id, _, secret = token.partition(".")
    return (user_id, secret) if secret else ("", "")


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time check of a secret against the stored hash (None: no such user)."""
    matches = hmac.compare_digest(hash_secret(secret), stored_hash or _DUMMY_HASH)
    return matches and stored_hash is not None


def find_user(session: Session, token: str) -> User | None:
    """The user whose token this is, or None (malformed, unknown id or wrong secret alike)."""
    user_id, secret = split_token(token)
    user = session.get(User, user_id) if user_id else None
    return user if secret_matches(secret, user.token_hash if user else None) else None


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header value; '' for anything else."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def address_key(address: str) -> str:
    """What the database keeps of a client address for the per-address limits: a hash, not the address."""
    return hashlib.sha256(f"portraitist-address:{address}".encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of two secrets (the admin token, a job's share key)."""
    return hmac.compare_digest(given.encode(), expected.encode())
