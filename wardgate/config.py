"""Typed configuration: one YAML file plus overrides, validated whole before anything listens.

Errors name their path in the file (``connections.shop.upstream: ...``) so an operator can fix them without
reading code. Secrets are only ever referenced (``env:NAME``, ``file:PATH``) and resolved here, once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from .reviews.model import ReviewSpec

DEFAULT_STORE = "sqlite:///wardgate.db"
DEFAULT_LISTEN_POSTGRES = "127.0.0.1:15432"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists each one with its path in the file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"30d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 30s, 15m, 1h, 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration (use a number of seconds or 30s, 15m, 1h, 7d)")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def format_duration(seconds: float) -> str:
    """The short form parse_duration reads: 2h, 15m, 90s."""
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class SecretRef(BaseModel):
    """Where a secret comes from; the value is read once at load and never printed."""

    model_config = ConfigDict(frozen=True)
    ref: str
    value: str = Field(repr=False)

    def __str__(self) -> str:
        return self.ref


def _resolve_secret(raw: object, base: Path) -> SecretRef:
    if not isinstance(raw, str):
        raise ValueError("a secret must be a reference string: env:NAME or file:PATH")
    if raw.startswith("env:"):
        name = raw[4:]
        if not name:
            raise ValueError("env: needs a variable name")
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return SecretRef(ref=raw, value=os.environ[name])
    if raw.startswith("file:"):
        path = Path(raw[5:]).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return SecretRef(ref=raw, value=path.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    raise ValueError("secrets are never written inline: use env:NAME or file:PATH")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _base(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    base = ctx.get("base")
    return base if isinstance(base, Path) else Path.cwd()


def _path(value: object, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | Path):
        raise ValueError("expected a file path")
    p = Path(value).expanduser()
    return p if p.is_absolute() else (_base(info) / p).resolve()


def _existing_file(value: object, info: ValidationInfo) -> Path | None:
    """A path (relative to the config file) that must name a file now: a CA or certificate the gateway reads."""
    p = _path(value, info)
    if p is not None and not p.is_file():
        raise ValueError(f"file {p} does not exist")
    return p


class PostgresConnection(_Model):
    """One upstream PostgreSQL database that users reach through the gateway by its name."""

    type: Literal["postgres"] = "postgres"
    upstream: str
    password: SecretRef | None = None
    sslmode: Literal["disable", "require", "verify-full"] = "disable"
    sslrootcert: Path | None = None
    allow_groups: list[str] = Field(default_factory=list)
    read_only: bool = False
    connect_timeout: Duration = 10.0
    description: str = ""
    access: AccessConfig | None = None  # just-in-time access grants (docs/access.md); none: no requests

    # Filled from ``upstream`` by the validator below.
    host: str = ""
    port: int = 5432
    database: str = ""
    user: str = ""

    @field_validator("password", mode="before")
    @classmethod
    def _secret(cls, v: object, info: ValidationInfo) -> SecretRef | None:
        return None if v is None else _resolve_secret(v, _base(info))

    @field_validator("sslrootcert", mode="before")
    @classmethod
    def _rootcert(cls, v: object, info: ValidationInfo) -> Path | None:
        return _existing_file(v, info)

    @model_validator(mode="before")
    @classmethod
    def _split_upstream(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("upstream"), str):
            return data
        url = urlsplit(data["upstream"])
        if url.scheme not in ("postgres", "postgresql"):
            raise ValueError("upstream: must be a postgresql://USER@HOST:PORT/DATABASE URL")
        if url.password is not None:
            raise ValueError("upstream: must not contain a password; reference it with password: env:NAME")
        try:
            port = url.port or 5432
        except ValueError:
            raise ValueError("upstream: invalid port") from None
        database = unquote(url.path.lstrip("/"))
        if not url.hostname or not url.username or not database:
            raise ValueError("upstream: must name a user, a host and a database: postgresql://USER@HOST:PORT/DB")
        if url.query:
            raise ValueError("upstream: options go in their own keys (sslmode, sslrootcert), not in the URL")
        return {
            **data,
            "host": url.hostname,
            "port": port,
            "database": database,
            "user": unquote(url.username),
        }

    @model_validator(mode="after")
    def _verify_full_needs_root(self) -> PostgresConnection:
        if self.sslmode == "verify-full" and self.sslrootcert is None:
            raise ValueError("sslmode verify-full needs sslrootcert: the CA file that signed the server's certificate")
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.database} as {self.user}"


class ListenConfig(_Model):
    postgres: str = DEFAULT_LISTEN_POSTGRES
    api: str | None = None  # HOST:PORT of the HTTP API (reviews, exec); none when not set
    allow_plaintext: bool = False

    @field_validator("postgres", "api")
    @classmethod
    def _hp(cls, v: str | None) -> str | None:
        if v is not None:
            parse_host_port(v)
        return v


class TLSConfig(_Model):
    """The gateway's own certificate for clients. ``self_signed`` generates one on first start and keeps it."""

    cert: Path | None = None
    key: Path | None = None
    self_signed: bool = False

    @field_validator("cert", "key", mode="before")
    @classmethod
    def _p(cls, v: object, info: ValidationInfo) -> Path | None:
        return _path(v, info)

    @model_validator(mode="after")
    def _complete(self) -> TLSConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        if not self.self_signed:
            for name, p in (("cert", self.cert), ("key", self.key)):
                if p is not None and not p.is_file():
                    raise ValueError(f"{name}: file {p} does not exist (set self_signed: true to generate one)")
        return self


class TokensConfig(_Model):
    key_file: Path | None = None
    default_ttl: Duration = 3600.0
    max_ttl: Duration = 30 * 86400.0

    @field_validator("key_file", mode="before")
    @classmethod
    def _p(cls, v: object, info: ValidationInfo) -> Path | None:
        return _path(v, info)


ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


class OIDCConfig(_Model):
    """One identity provider whose tokens the gateway accepts (docs/identity-providers.md).

    Only asymmetric signatures are accepted: with an HMAC algorithm anyone holding the verification key (for the
    gateway, a public one) could mint tokens, and ``none`` is no signature at all.
    """

    issuer: str
    audience: list[str] = Field(min_length=1)  # a token's aud must contain one of these
    client_id: str | None = None  # the public client `wardgate login` uses (device flow, auth code + PKCE)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email", "offline_access"])
    algorithms: list[str] = Field(default_factory=lambda: list(ASYMMETRIC_ALGORITHMS))
    username_claim: str = "email"
    groups_claim: str = "groups"  # a dotted path: groups, realm_access.roles
    group_map: dict[str, list[str]] = Field(default_factory=dict)  # IdP group -> gateway group(s)
    unmapped_groups: Literal["keep", "drop"] = "keep"
    allowed_groups: list[str] = Field(default_factory=list)  # after mapping; empty: anyone the IdP vouches for
    leeway: Duration = 30.0
    ca_file: Path | None = None  # trust for the IdP's HTTPS; default: the system store
    jwks_max_age: Duration = 3600.0
    jwks_min_refresh: Duration = 30.0
    jwks_max_stale: Duration = 12 * 3600.0

    @field_validator("audience", "scopes", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("group_map", mode="before")
    @classmethod
    def _map(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: [t] if isinstance(t, str) else t for k, t in v.items()}
        return v

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme == "http" and _loopback(parts.hostname or ""):
            return v
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the issuer must be an https:// URL (http only for a loopback host, in development)")
        if parts.query or parts.fragment:
            raise ValueError("the issuer must not have a query or fragment")
        return v

    @field_validator("algorithms")
    @classmethod
    def _algs(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"not an accepted signing algorithm: {', '.join(bad)} (only asymmetric ones: "
                             f"{', '.join(ASYMMETRIC_ALGORITHMS)}; none and HS* are never accepted)")
        if not v:
            raise ValueError("at least one algorithm")
        return v

    @field_validator("username_claim", "groups_claim")
    @classmethod
    def _claim(cls, v: str) -> str:
        if not v or any(not part for part in v.split(".")):
            raise ValueError("a claim name (a dotted path for nested claims: realm_access.roles)")
        return v

    @field_validator("ca_file", mode="before")
    @classmethod
    def _p(cls, v: object, info: ValidationInfo) -> Path | None:
        return _existing_file(v, info)

    @model_validator(mode="after")
    def _stale(self) -> OIDCConfig:
        if self.jwks_max_stale < self.jwks_max_age:
            raise ValueError("jwks_max_stale must not be shorter than jwks_max_age")
        return self


class IdentityConfig(_Model):
    tokens: TokensConfig = Field(default_factory=TokensConfig)
    oidc: list[OIDCConfig] = Field(default_factory=list)

    @field_validator("oidc", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, dict) else v  # one provider may be written as a mapping (the design note's form)

    @field_validator("oidc")
    @classmethod
    def _distinct(cls, v: list[OIDCConfig]) -> list[OIDCConfig]:
        issuers = [p.issuer for p in v]
        if len(set(issuers)) != len(issuers):
            raise ValueError("each issuer once")
        if "wardgate" in issuers:
            raise ValueError("the issuer wardgate is the gateway's own tokens'")
        return v


class ReplayConfig(_Model):
    """What of each result the audit keeps for `wardgate sessions replay`: the first rows as the client received
    them (after masking), each value cut to a bound, so a replay shows what was seen without the audit becoming
    a copy of the database."""

    rows: int = Field(default=10, ge=0, le=1000)  # first rows kept per result; 0 keeps none
    value_bytes: int = Field(default=256, ge=16, le=65536)  # each kept value cut to this many bytes


SyslogFacility = Literal["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
                         "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
                         "local3", "local4", "local5", "local6", "local7"]
SINK_TYPES = ("file", "syslog", "webhook")


class _SinkBase(_Model):
    """What every live audit sink has (docs/audit.md, Live sinks): a name for logs and loss events, and a bound on
    the records it may hold while its receiver is slow or gone, so a dead receiver costs memory, not the store."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,62}$")
    max_backlog: int = Field(default=10_000, ge=1, le=10_000_000)  # records queued; beyond it they are dropped
    format: Literal["jsonl", "ocsf"] = "jsonl"  # export's JSON line, or its OCSF 1.3.0 event (audit/ocsf.py)


class FileSinkConfig(_SinkBase):
    """JSON lines in a file the gateway rotates itself by size: PATH, PATH.1 (newest) ... PATH.keep."""

    type: Literal["file"]
    path: Path
    max_bytes: int = Field(default=100 << 20, ge=1024, le=1 << 40)
    keep: int = Field(default=5, ge=0, le=1000)  # rotated files kept; 0: the full file is simply started over
    fsync: bool = False  # flush each batch to the disk (survives a machine crash, costs a disk flush per batch)

    @field_validator("path", mode="before")
    @classmethod
    def _p(cls, v: object, info: ValidationInfo) -> Path | None:
        return _path(v, info)


class SyslogSinkConfig(_SinkBase):
    """RFC 5424 messages over UDP (RFC 5426) or TCP with octet counting (RFC 6587)."""

    type: Literal["syslog"]
    host: str = Field(min_length=1)
    port: int = Field(default=514, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"
    facility: SyslogFacility = "local0"
    app_name: str = Field(default="wardgate", pattern=r"^[!-~]{1,48}$")  # RFC 5424: printable ASCII, at most 48
    max_message: int = Field(default=8192, ge=480, le=1 << 20)  # bytes per message; long fields are cut to fit
    timeout: Duration = 5.0  # TCP connect and send

    @model_validator(mode="after")
    def _datagram(self) -> SyslogSinkConfig:
        if self.protocol == "udp" and self.max_message > 65507:
            raise ValueError("max_message: a UDP datagram carries at most 65507 bytes")
        return self


class WebhookSinkConfig(_SinkBase):
    """Batches of records POSTed as a JSON array, signed with HMAC-SHA256, retried with exponential backoff."""

    type: Literal["webhook"]
    url: str
    secret: SecretRef  # HMAC-SHA256 key of X-Wardgate-Signature; env:NAME or file:PATH, at least 16 bytes
    authorization: SecretRef | None = None  # sent as the Authorization header (e.g. "Splunk TOKEN"), if given
    batch_size: int = Field(default=100, ge=1, le=10_000)
    flush_interval: Duration = 1.0  # a partial batch is sent this long after its first record arrived
    timeout: Duration = 10.0
    retries: int = Field(default=5, ge=0, le=100)  # then the batch is counted lost
    backoff: Duration = 1.0  # the first retry's delay; each next one doubles, up to a minute
    ca_file: Path | None = None  # trust for the receiver's HTTPS; default: the system store

    @field_validator("secret", "authorization", mode="before")
    @classmethod
    def _secret(cls, v: object, info: ValidationInfo) -> SecretRef | None:
        if v is None:
            return None
        ref = _resolve_secret(v, _base(info))
        if ref.ref.startswith("file:") and not Path(ref.ref[5:]).expanduser().is_absolute():
            # The shipper process validates these settings again from the gateway's copy, in another working
            # directory: a relative file reference is kept as the absolute path it was read from.
            ref = SecretRef(ref="file:" + str((_base(info) / Path(ref.ref[5:]).expanduser()).resolve()),
                            value=ref.value)
        return ref

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretRef) -> SecretRef:
        if len(v.value.encode()) < 16:
            raise ValueError("the webhook secret must be at least 16 bytes")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.username is not None or parts.password is not None:
            raise ValueError("the URL must not hold credentials (it is recorded with the configuration): use "
                             "authorization: env:NAME")
        if parts.scheme == "http" and _loopback(parts.hostname or ""):
            return v
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the URL must be https:// (http only for a loopback host)")
        return v

    @field_validator("ca_file", mode="before")
    @classmethod
    def _ca(cls, v: object, info: ValidationInfo) -> Path | None:
        return _existing_file(v, info)


SinkConfig = Annotated[FileSinkConfig | SyslogSinkConfig | WebhookSinkConfig, Field(discriminator="type")]


def _sink_types(v: object) -> object:
    """A clear word for a sink without a known type, instead of the union's own message."""
    if isinstance(v, list):
        for i, s in enumerate(v):
            if isinstance(s, dict) and s.get("type") not in SINK_TYPES:
                what = "needs a type" if "type" not in s else f"has an unknown type {s['type']!r}"
                raise ValueError(f"sink {i} {what}: one of {', '.join(SINK_TYPES)}")
    return v


class AuditConfig(_Model):
    """The audit journal (records durable before a client is answered) and the hash chain's signed checkpoints."""

    fsync: bool = False
    key_file: Path | None = None  # the checkpoint signing key (Ed25519); default DATA_DIR/audit-signing.key
    checkpoint_every: int = Field(default=1000, ge=1, le=1_000_000)  # sign a chain's head every N entries...
    checkpoint_interval: Duration = 10.0  # ...or after this long when it has moved
    retention: Duration | None = None  # audit older than this is pruned (hourly by the gateway; `audit prune`)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    sinks: list[SinkConfig] = Field(default_factory=list)  # live copies of the audit (docs/audit.md, Live sinks)

    @field_validator("key_file", mode="before")
    @classmethod
    def _p(cls, v: object, info: ValidationInfo) -> Path | None:
        return _path(v, info)

    @field_validator("sinks", mode="before")
    @classmethod
    def _sinks_typed(cls, v: object) -> object:
        return _sink_types(v)

    @field_validator("sinks")
    @classmethod
    def _sinks_distinct(cls, v: list[FileSinkConfig | SyslogSinkConfig | WebhookSinkConfig]
                        ) -> list[FileSinkConfig | SyslogSinkConfig | WebhookSinkConfig]:
        seen: set[str] = set()
        paths: set[Path] = set()
        for s in v:
            if s.name in seen:
                raise ValueError(f"sink names must be distinct: {s.name!r} is used twice")
            seen.add(s.name)
            if isinstance(s, FileSinkConfig):
                if s.path in paths:
                    raise ValueError(f"two file sinks write {s.path}: each needs a file of its own")
                paths.add(s.path)
        return v


class LimitsConfig(_Model):
    max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1 << 30)
    auth_timeout: Duration = 30.0


class RuleMatch(_Model):
    """What a rule matches; every condition given must hold (a list holds when any of its entries does)."""

    kinds: list[str] = Field(default_factory=list)
    tables: list[str] = Field(default_factory=list)
    tables_written: list[str] = Field(default_factory=list)
    no_where: bool | None = None
    writes: bool | None = None
    functions: list[str] = Field(default_factory=list)
    regex: str | None = None
    except_kinds: list[str] = Field(default_factory=list)  # never matches a statement of these kinds/tags

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @field_validator("kinds", "tables", "tables_written", "functions", "except_kinds")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.strip().lower() for x in v]

    @model_validator(mode="after")
    def _something(self) -> RuleMatch:
        if not (self.kinds or self.tables or self.tables_written or self.functions or self.regex) \
                and self.no_where is None and self.writes is None:
            raise ValueError(
                "a rule must match on something: kinds, tables, tables_written, no_where, writes, functions or regex"
            )
        return self


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _every_day() -> list[Day]:
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class WindowConfig(_Model):
    """A maintenance window: approvals of a review count only within it."""

    days: list[Day] = Field(default_factory=_every_day, min_length=1)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # HH:MM
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin, or UTC)") from None
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> WindowConfig:
        if self.start == self.end:
            raise ValueError("a window's start and end must differ")
        return self


class ReviewConfig(_Model):
    """Who must approve a statement a ``review`` rule holds, and how long it may wait (docs/reviews.md)."""

    approvers: list[str] = Field(min_length=1)  # groups whose members may approve or deny
    min_approvals: int = Field(default=1, ge=1, le=20)
    all_groups: bool = False  # at least one approval from each group in approvers (and min_approvals in all)
    expires_after: Duration = 900.0  # a request nobody decides is refused after this
    notice_interval: Duration = 10.0  # how often a waiting client is told it is still waiting
    window: WindowConfig | None = None  # approvals count only within it (a maintenance window)

    @field_validator("approvers")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        v = [g.strip() for g in v]
        if any(not g for g in v) or len(set(v)) != len(v):
            raise ValueError("approvers must be distinct, non-empty group names")
        return v

    def spec(self) -> ReviewSpec:
        """The review rule book's view of these settings."""
        from datetime import time as dt_time

        from .reviews.model import ReviewSpec, Window

        w = self.window
        window = None if w is None else Window(tuple(w.days), dt_time.fromisoformat(w.start),
                                                dt_time.fromisoformat(w.end), w.timezone)
        return ReviewSpec(tuple(self.approvers), self.approvals_needed, self.all_groups, self.expires_after,
                          self.notice_interval, window)

    @property
    def approvals_needed(self) -> int:
        """min_approvals, and with all_groups at least one per group."""
        return max(self.min_approvals, len(self.approvers) if self.all_groups else 1)

    @model_validator(mode="after")
    def _reachable(self) -> ReviewConfig:
        if self.notice_interval > self.expires_after:
            raise ValueError("notice_interval must not be longer than expires_after")
        return self


class AccessConfig(_Model):
    """Just-in-time access to a connection: who approves a request, how long a grant may last, and which groups a
    grant may add to its holder's for that time (an elevation, e.g. a group with write access)."""

    review: ReviewConfig
    max_duration: Duration = 8 * 3600.0
    groups: list[str] = Field(default_factory=list)


class RuleConfig(_Model):
    """A policy rule. Scope: ``connections`` and ``groups`` (empty: all), minus ``except_groups``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,62}$")
    action: Literal["allow", "deny", "review"]
    when: RuleMatch
    reason: str = ""
    connections: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    except_groups: list[str] = Field(default_factory=list)
    review: ReviewConfig | None = None  # for action review; default: policy.review


class PolicyConfig(_Model):
    """The built-in guardrails and the policy-wide settings (rules themselves are under ``rules``)."""

    builtin: bool = True  # the default rule pack (docs/policy.md)
    disable: list[str] = Field(default_factory=list)  # built-in rules switched off, by name
    exempt_groups: list[str] = Field(default_factory=list)  # groups the built-in rules do not apply to
    unparsed: Literal["deny", "allow"] = "deny"
    read_only_groups: list[str] = Field(default_factory=list)
    default: Literal["allow", "deny", "review"] = "allow"  # when no rule matches
    review: ReviewConfig | None = None  # approvers etc. of review rules that name none (and of default: review)


_COLUMN_PATTERN = re.compile(r"^[^.\s]+(\.[^.\s]+){1,2}$")


class CustomDetectorConfig(_Model):
    """A detector of the user's: a name and a regex matched against the UTF-8 bytes of values."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    regex: str
    description: str = ""


class MaskRuleConfig(_Model):
    """Which values a session sees masked, and how (docs/masking.md). Scope as for policy rules."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,62}$")
    columns: list[str] = Field(default_factory=list)  # schema.table.column or table.column, with * and ? wildcards
    detect: list[str] = Field(default_factory=list)  # detector names, or "all" for every built-in one
    style: Literal["partial", "full", "hash", "null"] = "partial"
    connections: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    exempt_groups: list[str] = Field(default_factory=list)

    @field_validator("style", mode="before")
    @classmethod
    def _yaml_null(cls, v: object) -> object:
        return "null" if v is None else v  # `style: null` unquoted is YAML's null, and means the null style

    @field_validator("columns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            if not _COLUMN_PATTERN.match(p):
                raise ValueError(
                    f"{p!r} is not a column pattern: use table.column or schema.table.column (wildcards * and ?)"
                )
        return v

    @model_validator(mode="after")
    def _something(self) -> MaskRuleConfig:
        if not self.columns and not self.detect:
            raise ValueError("a masking rule needs columns, detect, or both")
        return self


class MaskingConfig(_Model):
    """Inline masking of result values (docs/masking.md)."""

    hash_key: SecretRef | None = None  # the key of the hash style; required when a rule uses it
    catalog_ttl: Duration = 60.0  # how long column names looked up in the upstream catalog are trusted
    detectors: list[CustomDetectorConfig] = Field(default_factory=list)
    rules: list[MaskRuleConfig] = Field(default_factory=list)

    @field_validator("hash_key", mode="before")
    @classmethod
    def _secret(cls, v: object, info: ValidationInfo) -> SecretRef | None:
        return None if v is None else _resolve_secret(v, _base(info))


NotifyEvent = Literal["review_requested", "review_decided"]


def _all_events() -> list[NotifyEvent]:
    return ["review_requested", "review_decided"]


class WebhookConfig(_Model):
    """A URL that gets review events: wardgate's JSON (signed) or a Slack-compatible incoming-webhook payload."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,62}$")
    url: str = Field(pattern=r"^https?://\S+$")
    format: Literal["json", "slack"] = "json"
    secret: SecretRef | None = None  # HMAC-SHA256 key of the X-Wardgate-Signature header; required for json
    events: list[NotifyEvent] = Field(default_factory=_all_events)
    timeout: Duration = 5.0

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, v: object, info: ValidationInfo) -> SecretRef | None:
        return None if v is None else _resolve_secret(v, _base(info))

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, v: object, info: ValidationInfo) -> object:
        """A Slack webhook URL is itself a secret: env:NAME and file:PATH are read like secrets."""
        if isinstance(v, str) and v.startswith(("env:", "file:")):
            return _resolve_secret(v, _base(info)).value
        return v

    @model_validator(mode="after")
    def _signed(self) -> WebhookConfig:
        if self.format == "json" and self.secret is None:
            raise ValueError("a json webhook needs a secret (env:NAME or file:PATH): receivers check the signature")
        if self.secret is not None and len(self.secret.value.encode()) < 16:
            raise ValueError("the webhook secret must be at least 16 bytes")
        return self


class EmailConfig(_Model):
    """Mail over SMTP: review requests to the approver groups' addresses, decisions to the requester's."""

    server: str  # HOST:PORT
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    starttls: bool = False
    username: str | None = None
    password: SecretRef | None = None
    reviewers: dict[str, list[str]] = Field(default_factory=dict)  # group -> addresses
    requesters: dict[str, str] = Field(default_factory=dict)  # user -> address
    events: list[NotifyEvent] = Field(default_factory=_all_events)
    timeout: Duration = 10.0

    @field_validator("password", mode="before")
    @classmethod
    def _secret(cls, v: object, info: ValidationInfo) -> SecretRef | None:
        return None if v is None else _resolve_secret(v, _base(info))

    @field_validator("server")
    @classmethod
    def _hostport(cls, v: str) -> str:
        parse_host_port(v)
        return v


class NotificationsConfig(_Model):
    """Who hears of review requests and decisions (docs/reviews.md). Deliveries are queued in the store and
    retried with exponential backoff; a failing receiver never holds up a review."""

    webhooks: list[WebhookConfig] = Field(default_factory=list)
    email: EmailConfig | None = None
    max_attempts: int = Field(default=8, ge=1, le=30)
    retry_after: Duration = 2.0  # the first retry's delay; each next one doubles, up to 10 minutes

    @model_validator(mode="after")
    def _names(self) -> NotificationsConfig:
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names) or "email" in names:
            raise ValueError("webhook names must be distinct (and not 'email')")
        return self


class Config(_Model):
    store: str = DEFAULT_STORE
    data_dir: Path = Field(default=Path(".wardgate"), validate_default=True)
    listen: ListenConfig = Field(default_factory=ListenConfig)
    tls: TLSConfig = Field(default_factory=TLSConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    connections: dict[str, PostgresConnection] = Field(default_factory=dict)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    rules: list[RuleConfig] = Field(default_factory=list)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _dd(cls, v: object, info: ValidationInfo) -> Path | None:
        return _path(v, info)

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql(\+psycopg)?|postgres)://", v):
            raise ValueError("store must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
        return v

    @field_validator("connections")
    @classmethod
    def _names(cls, v: dict[str, PostgresConnection]) -> dict[str, PostgresConnection]:
        for name in v:
            if not NAME_RE.match(name):
                raise ValueError(f"connection name {name!r} must be letters, digits, _ . - (at most 63)")
        return v

    @model_validator(mode="after")
    def _rules_refer_to_what_exists(self) -> Config:
        from .policy.rules import BUILTIN_NAMES, RESERVED_NAMES  # the pack is policy's; config checks names

        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen or rule.name in RESERVED_NAMES:
                raise ValueError(f"rules[{i}]: the rule name {rule.name!r} is already taken")
            seen.add(rule.name)
            unknown = [c for c in rule.connections if c not in self.connections]
            if unknown:
                raise ValueError(f"rules[{i}] ({rule.name}): no such connection: {', '.join(unknown)}")
        self._check_reviews()
        self._check_masking()
        unknown = [n for n in self.policy.disable if n not in BUILTIN_NAMES]
        if unknown:
            raise ValueError(
                f"policy.disable: no built-in rule named {', '.join(unknown)} "
                f"(built-in rules: {', '.join(sorted(BUILTIN_NAMES))})"
            )
        return self

    def _check_reviews(self) -> None:
        for i, rule in enumerate(self.rules):
            if rule.review is not None and rule.action != "review":
                raise ValueError(f"rules[{i}] ({rule.name}): a review block belongs to rules whose action is review")
            if rule.action == "review" and rule.review is None and self.policy.review is None:
                raise ValueError(
                    f"rules[{i}] ({rule.name}): action review needs approvers: give the rule a review block "
                    f"(review: {{approvers: [GROUP]}}) or set policy.review"
                )
        if self.policy.default == "review" and self.policy.review is None:
            raise ValueError("policy.default is review: set policy.review (review: {approvers: [GROUP]})")

    def review_for(self, rule: str) -> ReviewConfig | None:
        """The review settings of a rule whose action is review ("default": policy.default)."""
        for r in self.rules:
            if r.name == rule:
                return r.review or self.policy.review
        return self.policy.review

    def _check_masking(self) -> None:
        from .masking.detectors import BUILTIN_DETECTORS, custom  # detector names are masking's

        known = set(BUILTIN_DETECTORS)
        for i, d in enumerate(self.masking.detectors):
            if d.name in known or d.name == "all":  # in detect, "all" means every built-in detector
                raise ValueError(f"masking.detectors[{i}]: the detector name {d.name!r} is already taken")
            try:
                custom(d.name, d.regex)
            except ValueError as exc:
                raise ValueError(f"masking.detectors[{i}]: {exc}") from None
            known.add(d.name)
        seen: set[str] = set()
        for i, rule in enumerate(self.masking.rules):
            where = f"masking.rules[{i}] ({rule.name})"
            if rule.name in seen:
                raise ValueError(f"{where}: the rule name {rule.name!r} is already taken")
            seen.add(rule.name)
            unknown = [c for c in rule.connections if c not in self.connections]
            if unknown:
                raise ValueError(f"{where}: no such connection: {', '.join(unknown)}")
            unknown = [d for d in rule.detect if d != "all" and d not in known]
            if unknown:
                raise ValueError(
                    f"{where}: no detector named {', '.join(unknown)} (known: all, {', '.join(sorted(known))})"
                )
            if rule.style == "hash" and self.masking.hash_key is None:
                raise ValueError(f"{where}: the hash style needs masking.hash_key (for example env:WARDGATE_MASK_KEY)")
        if self.masking.hash_key is not None and len(self.masking.hash_key.value.encode()) < 16:
            raise ValueError("masking.hash_key: the key must be at least 16 bytes; a short key can be guessed")

    @model_validator(mode="after")
    def _tls_or_plaintext(self) -> Config:
        if self.tls.cert is None and not self.tls.self_signed and not self.listen.allow_plaintext:
            raise ValueError(
                "tls: no certificate: set tls.cert and tls.key, or tls.self_signed: true (development), "
                "or listen.allow_plaintext: true to accept unencrypted clients (tokens would cross in clear)"
            )
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls.cert is not None or self.tls.self_signed

    def fingerprint(self) -> tuple[str, dict[str, Any]]:
        """(SHA-256, the configuration as JSON) with every secret replaced by its reference (``env:NAME``): what
        the audit keeps of the configuration a gateway ran with, so a policy change is on the record."""

        def scrub(v: Any) -> Any:
            if isinstance(v, dict):
                if set(v) == {"ref", "value"}:
                    return v["ref"]
                return {k: scrub(x) for k, x in v.items()}
            if isinstance(v, list):
                return [scrub(x) for x in v]
            return v

        body = scrub(self.model_dump(mode="json"))
        text_ = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text_.encode()).hexdigest(), body

    def audit_key_file(self) -> Path:
        return self.audit.key_file or self.data_dir / "audit-signing.key"

    def tls_files(self) -> tuple[Path, Path]:
        """Where the gateway certificate lives (configured, or in data_dir when self-signed)."""
        if self.tls.cert is not None and self.tls.key is not None:
            return self.tls.cert, self.tls.key
        return self.data_dir / "gateway.crt", self.data_dir / "gateway.key"


@dataclass(frozen=True)
class Overrides:
    """Values from the command line or ``WARDGATE_*`` variables; they win over the file."""

    store: str | None = None
    listen_postgres: str | None = None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_config(path: str | Path | None, overrides: Overrides | None = None) -> Config:
    """Read, resolve and validate the config; raise ``ConfigError`` listing every problem."""
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"cannot read {p}: {exc.strerror}"]) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError([f"{p} is not valid YAML: {exc}"]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{p}: the top level must be a mapping of keys"])
        raw = loaded
        base = p.resolve().parent
    ov = overrides or Overrides()
    store = ov.store or os.environ.get("WARDGATE_STORE")
    listen = ov.listen_postgres or os.environ.get("WARDGATE_LISTEN_POSTGRES")
    problems: list[str] = []
    if listen:
        try:
            parse_host_port(listen)
        except ValueError as exc:
            problems.append(f"--listen-postgres: {exc}")
    if problems:
        raise ConfigError(problems)
    try:
        cfg = Config.model_validate(raw, context={"base": base})
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None
    updates: dict[str, Any] = {}
    if store:
        try:
            Config._store(store)
        except ValueError as exc:
            raise ConfigError([f"--store: {exc}"]) from None
        updates["store"] = store
    elif raw.get("store") is None:
        updates["store"] = "sqlite:///" + str(base / "wardgate.db")
    elif cfg.store.startswith("sqlite:///") and not cfg.store.startswith("sqlite:////"):
        updates["store"] = "sqlite:///" + str((base / cfg.store[len("sqlite:///") :]).resolve())
    if listen:
        updates["listen"] = cfg.listen.model_copy(update={"postgres": listen})
    return cfg.model_copy(update=updates) if updates else cfg


def _describe(err: Any) -> str:
    loc = tuple(err.get("loc", ()))
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    return f"{_format_loc(loc)}: {msg}"


PostgresConnection.model_rebuild()  # AccessConfig is defined after it
