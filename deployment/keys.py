"""Device tokens, enrolment secrets and the canary draw: small pure functions, no database.

A token is 32 random bytes (URL-safe base64). Only its SHA-256 is stored: a token cannot be guessed,
so a slow password hash buys nothing, and a leaked table opens no device. Lookup is by the hash
itself (a unique index), so no secret is compared byte by byte in Python.
"""

import hashlib
import secrets

TOKEN_BYTES = 32
PREFIX_CHARS = 8
CANARY_BUCKETS = 100


def new_secret() -> str:
    """A fresh device token or fleet enrolment secret (43 characters).

    Never one that starts with "-": a command line would read it as an option (`--token -x…`
    fails in argparse), and one draw in 64 would. Redrawing costs log2(64/63), under 0.03 of the
    secret's 256 bits."""
    while True:
        secret = secrets.token_urlsafe(TOKEN_BYTES)
        if not secret.startswith("-"):
            return secret


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def prefix(secret: str) -> str:
    return secret[:PREFIX_CHARS]


def canary_bucket(device_uid: str) -> int:
    """The device's stable bucket 0..99: the first 8 bytes of SHA-256 of its uid, modulo 100.

    The same uid always lands in the same bucket, so raising the share from 10 to 20 keeps the
    first 10 % on canary and adds the next 10 %. (2**64 is not a multiple of 100; the bias is
    below 1e-17 per bucket.)"""
    digest = hashlib.sha256(f"concord-canary:{device_uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % CANARY_BUCKETS


def on_canary(device_uid: str, share: int) -> bool:
    """Whether a device runs the canary bundle when `share` percent of devices do."""
    return canary_bucket(device_uid) < share


def input_sampled(device_uid: str, seq: int, rate: float) -> bool:
    """Whether the server asks for the input of the device's record `seq` at sampling `rate`.

    A hash, not a random draw: a retried batch is asked for the same inputs."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    digest = hashlib.sha256(f"concord-sample:{device_uid}:{seq}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate
