"""API keys (stored as SHA-256 hashes, compared in constant time) and the per-key token-bucket rate limit.

Keys file format, one key per line (blank lines and lines starting with '#' are ignored):

    sha256:<64 lowercase hex digits of sha256(key)> [name]

Plaintext keys are refused: `cli.py keys add --file keys.txt --name NAME` makes a random key, appends its
hashed line and prints the key once. Keys are 256-bit random tokens, so one SHA-256 is enough (no slow KDF).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from toolkit.artifacts import read_small_file
from toolkit.errors import ConfigError

KEY_PREFIX = "duet_"  # every generated key starts with it, so a leaked key is easy to recognise
_LINE = re.compile(r"^sha256:([0-9a-f]{64})(?:\s+(\S.*))?$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_line(key: str, name: str = "") -> str:
    """The keys-file line that stores `key` hashed (a key is printable ASCII: what an Authorization header carries)."""
    if not re.fullmatch(r"[!-~]+", key):
        raise ConfigError("a key is one word of printable ASCII characters (what an Authorization header carries)")
    if name and not (re.fullmatch(r"\S+", name) and name.isprintable()):
        raise ConfigError(f"key name {name!r} must be one word of printable characters")
    return f"sha256:{hash_key(key)}" + (f" {name}" if name else "")


KEYS_HEADER = "# DUET API keys: sha256 of each key, then an optional name\n"


def add_key(keys_file: Path, name: str = "") -> str:
    """Make a new key, append its hashed line to the keys file (created with a header if missing); returns the key,
    which is stored nowhere in the clear. Safe to run concurrently: the file is locked while the line is added."""
    import fcntl

    key = new_key()
    line = key_line(key, name)
    path = Path(keys_file)
    try:
        with path.open("a+b") as handle:  # appends always land at the end, whatever another process wrote
            fcntl.flock(handle, fcntl.LOCK_EX)  # one writer at a time: the header and the newline are decided alone
            handle.seek(0, 2)
            size = handle.tell()
            if size:
                handle.seek(size - 1)
                last = handle.read(1)
            text = (KEYS_HEADER if not size else "" if last == b"\n" else "\n") + line + "\n"
            handle.write(text.encode())
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise ConfigError(f"{path}: cannot add the key ({err.strerror or err}); nothing was written") from err
    return key


@dataclass(frozen=True)
class StoredKey:
    """One accepted key, as the keys file holds it."""

    digest: bytes  # sha256 of the key
    name: str  # label shown in logs and used as the rate-limit bucket


class KeyStore:
    """The accepted keys; `identify` compares a presented key against every stored hash in constant time."""

    def __init__(self, keys: list[StoredKey], source: str = "keys.txt"):
        if not keys:
            raise ConfigError(f"{source}: no API keys in it; add one with `cli.py keys add --file {source}`")
        self.keys = keys

    @classmethod
    def from_file(cls, path: str | Path) -> "KeyStore":
        path = Path(path)
        try:
            lines = read_small_file(path).decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot read the API keys file ({err})") from err
        keys = []
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.match(line)
            if not match:
                raise ConfigError(f"{path}:{number}: expected 'sha256:<64 hex digits> [name]'; plaintext keys are "
                                  f"not accepted (make one with `cli.py keys add --file {path}`)")
            keys.append(StoredKey(bytes.fromhex(match.group(1)), match.group(2) or f"key{len(keys) + 1}"))
        return cls(keys, str(path))

    def identify(self, presented: str) -> str | None:
        """The name of the key `presented` matches, or None; the time taken does not depend on which key matched."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key.name
        return found


def bearer_token(header: str | None) -> str | None:
    """The token of an 'Authorization: Bearer <token>' header, or None when absent or of another scheme."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class RateLimiter:
    """A token bucket per key: `rate` requests per second sustained, `burst` at once. Not thread-safe (one event loop)."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    MAX_BUCKETS = 100_000  # beyond it, buckets that have refilled are forgotten (they hold no information)

    def _forget(self, now: float) -> None:
        """Make room: drop the buckets that have refilled, and if that is not a tenth, the oldest tenth."""
        kept = {k: (t, at) for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate < self.burst}
        if len(kept) > self.MAX_BUCKETS * 9 // 10:
            kept = dict(list(kept.items())[len(kept) - self.MAX_BUCKETS * 9 // 10:])
        self._buckets = kept

    def wait(self, key: str) -> float:
        """The seconds before `key` may go ahead (0.0: now), without taking a token."""
        if self.rate <= 0 or key not in self._buckets:
            return 0.0
        tokens, last = self._buckets[key]
        tokens = min(float(self.burst), tokens + (self.clock() - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def acquire(self, key: str) -> float:
        """0.0 when the request may go ahead, else the seconds to wait before the next one will be allowed."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        if len(self._buckets) >= self.MAX_BUCKETS and key not in self._buckets:
            self._forget(now)
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; never 0, so a client that obeys it does not spin."""
    return str(max(1, math.ceil(seconds)))
