"""Ed25519 signature checks on message content (rules.md, "Signatures (E2E)")."""

from __future__ import annotations

import base64
import binascii
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.domain.errors import Invalid


def signed_bytes(content: str, conversation_id: str, client_random: int) -> bytes:
    """UTF-8(content) || 16 raw bytes of the conversation UUID || client_random (u32 BE)."""
    return content.encode("utf-8") + uuid.UUID(conversation_id).bytes + client_random.to_bytes(4, "big")


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid.field(field, "must be base64", code="invalid_signature") from exc


def verify_signature(content: str, conversation_id: str, client_random: int, signature: str, public_key: str) -> None:
    """Raise `invalid_signature` unless `signature` is the key's signature of the message."""
    raw_key = _b64(public_key, "sender_public_key")
    raw_sig = _b64(signature, "signature")
    if len(raw_key) != 32 or len(raw_sig) != 64:
        raise Invalid("signature or key has the wrong length", code="invalid_signature")
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(
            raw_sig, signed_bytes(content, conversation_id, client_random)
        )
    except InvalidSignature as exc:
        raise Invalid("the signature does not match the message", code="invalid_signature") from exc
