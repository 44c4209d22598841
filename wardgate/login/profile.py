"""Where `wardgate login` keeps a user's tokens: one JSON file, readable by its owner only.

The file lives in the user's config directory (``$XDG_CONFIG_HOME/wardgate/credentials.json``, or under
``$WARDGATE_HOME``), holds one profile per gateway URL, and is written whole to a temporary file created 0600 and
renamed over the old one, so that a crash never leaves a half-written file and the tokens are never readable by
another user, not even for an instant. A file another user can read is refused rather than used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class ProfileError(Exception):
    """No usable login: the message says what to run."""


def config_dir() -> Path:
    if home := os.environ.get("WARDGATE_HOME"):
        return Path(home)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wardgate"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


@dataclass
class Profile:
    gateway: str  # the gateway's HTTP API base URL, as given to `wardgate login`
    postgres: str  # HOST:PORT of its PostgreSQL listener
    issuer: str
    client_id: str
    token_endpoint: str
    credential: str = "access_token"  # which token the gateway accepts from this provider: access_token or id_token
    revocation_endpoint: str | None = None
    ca_file: str | None = None  # trust for the gateway (API and PostgreSQL listener)
    idp_ca_file: str | None = None  # trust for the identity provider
    scopes: list[str] = field(default_factory=list)
    user: str = ""  # the user name the gateway knows this identity by
    access_token: str = ""
    id_token: str | None = None
    refresh_token: str | None = None
    expires_at: float = 0.0  # epoch seconds, of the credential in use

    def token(self) -> str:
        value = self.id_token if self.credential == "id_token" else self.access_token
        if not value:
            raise ProfileError(f"the login to {self.gateway} holds no {self.credential}; run wardgate login again")
        return value

    def expires_in(self) -> float:
        return self.expires_at - time.time()


def load_all() -> dict[str, Any]:
    path = credentials_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return {"default": None, "profiles": {}}
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ProfileError(f"{path} can be read by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                           f"it holds tokens: chmod 600 it, or delete it and log in again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise ProfileError(f"{path} is not a wardgate credentials file; delete it and log in again")
    return data


def save_all(data: dict[str, Any]) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def load(gateway: str | None) -> Profile:
    """The profile of ``gateway`` (its URL), or of the gateway logged in to last."""
    data = load_all()
    key = gateway.rstrip("/") if gateway else data.get("default")
    raw = data["profiles"].get(key) if key else None
    if raw is None:
        where = f" to {gateway}" if gateway else ""
        raise ProfileError(f"not logged in{where}: run wardgate login --gateway URL")
    try:
        return Profile(**raw)
    except TypeError:
        raise ProfileError(f"the stored login to {key} is unreadable; run wardgate login again") from None


def save(profile: Profile, make_default: bool = True) -> None:
    data = load_all()
    profile.gateway = profile.gateway.rstrip("/")
    data["profiles"][profile.gateway] = asdict(profile)
    if make_default or not data.get("default"):
        data["default"] = profile.gateway
    save_all(data)


def forget(gateway: str) -> bool:
    data = load_all()
    removed = data["profiles"].pop(gateway.rstrip("/"), None) is not None
    if data.get("default") == gateway.rstrip("/"):
        data["default"] = next(iter(data["profiles"]), None)
    save_all(data)
    return removed


@contextlib.contextmanager
def credentials_lock() -> Iterator[None]:
    """Serialises the refreshes of every wardgate process of this user (a `wardgate connect` per connection,
    `whoami`, `exec`), all sharing a login: a provider that rotates refresh tokens revokes the whole login when a
    spent one is presented again, so each must refresh from the file's latest token, one at a time."""
    path = credentials_path().with_name(".credentials.lock")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
