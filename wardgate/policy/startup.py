"""Settings a client asks for in its startup packet, as the SET statements they amount to.

PostgreSQL applies every startup parameter other than ``user``, ``database``, ``replication`` and ``options`` as
a setting, and ``options`` carries more as ``-c name=value`` / ``--name=value``. ``role=admin`` in the startup
packet is ``SET ROLE admin`` before the first statement; the policy must see it as such.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_NOT_SETTINGS = frozenset({"user", "database", "replication", "options"})


class UnsupportedOption(ValueError):
    """An ``options`` word the gateway does not pass on (anything but a setting)."""


def split_options(options: str) -> list[str]:
    """``options`` split as the server splits it: on whitespace, a backslash escaping the next character."""
    words: list[str] = []
    cur: list[str] = []
    escaped = False
    in_word = False
    for ch in options:
        if escaped:
            cur.append(ch)
            escaped = False
            in_word = True
        elif ch == "\\":
            escaped = True
            in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            cur.append(ch)
            in_word = True
    if in_word:
        words.append("".join(cur))
    return words


def startup_settings(params: dict[str, str]) -> list[tuple[str, str]]:
    """Every (setting, value) the startup packet asks for, in order. Raises ``UnsupportedOption``."""
    out = [(k, v) for k, v in params.items() if k not in _NOT_SETTINGS and not k.startswith("_pq_.")]
    words = split_options(params.get("options", ""))
    i = 0
    while i < len(words):
        w = words[i]
        if w == "-c" and i + 1 < len(words):
            pair = words[i + 1]
            i += 2
        elif (w.startswith("-c") and len(w) > 2) or (w.startswith("--") and "=" in w):
            pair = w[2:]
            i += 1
        else:
            raise UnsupportedOption(f"the startup option {w!r} is not a setting (only -c name=value is passed on)")
        name, sep, value = pair.partition("=")
        if not sep:
            raise UnsupportedOption(f"the startup option {pair!r} has no value (use -c name=value)")
        out.append((name.replace("-", "_"), value))
    for name, _ in out:
        if not _NAME.match(name):
            raise UnsupportedOption(f"{name!r} is not a setting name")
    return out


def as_statement(name: str, value: str) -> str:
    """The SET statement a startup setting amounts to (the value quoted as a literal)."""
    return f"SET {name} = '" + value.replace("'", "''") + "'"
