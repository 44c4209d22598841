"""Deciding what a client sent: one statement, or a query string of several decided as a whole.

Shared by the pipeline (live traffic) and ``wardgate policy check`` (no database), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .rules import Decision, RuleSet
from .sql import StatementInfo, classify

UNKNOWN_STATEMENT = StatementInfo("unknown", "-- a prepared statement the gateway has not seen prepared")


# single_statement's answers by text, here as well as in classify's lru_cache: classify is interpreted, and a call
# to it from compiled code (a Python-level call, then the LRU's bookkeeping) is ~1,300 instructions, where this
# dict's lookup is ~100; the relay asks twice a statement (Parse, Execute). Bounded like the other caches.
# Final, as every module-level name the per-statement code reads: compiled, a Final name is a C static, any
# other a lookup by name in the module's dict (~130 instructions each time).
_SINGLE: Final[dict[str, StatementInfo]] = {}
_SINGLE_ENTRIES: Final = 8192
_SINGLE_TEXT: Final = 8192


def single_statement(text: str) -> StatementInfo:
    """The one statement of an extended-protocol text (the server refuses several; record what was tried)."""
    info = _SINGLE.get(text)
    if info is not None:
        return info
    infos = classify(text)
    if len(infos) == 1:
        info = infos[0]
    elif not infos:
        info = StatementInfo("empty", "")
    else:
        info = StatementInfo("multiple", "; ".join(i.redacted or "?" for i in infos))
    if len(text) <= _SINGLE_TEXT:
        if len(_SINGLE) >= _SINGLE_ENTRIES:
            _SINGLE.clear()
        _SINGLE[text] = info
    return info


def effective(
    info: StatementInfo, prepared: Mapping[str, str], overlay: Mapping[str, StatementInfo] | None = None
) -> StatementInfo:
    """What a statement runs: ``EXECUTE name`` runs what ``name`` was prepared as (a PREPARE's facts are its
    inner statement's). A name the gateway never saw prepared is ``unknown``, which the policy refuses."""
    name = info.execute_name
    if name is None:
        return info
    if overlay and name in overlay:
        return overlay[name]
    text = prepared.get(name)
    return UNKNOWN_STATEMENT if text is None else single_statement(text)


def decide_message(
    rules: RuleSet, infos: tuple[StatementInfo, ...], prepared: Mapping[str, str]
) -> list[tuple[Decision, StatementInfo]]:
    """Each statement's decision and the statement it was decided on, in order; a PREPARE earlier in the same
    string counts for an EXECUTE later in it."""
    overlay: dict[str, StatementInfo] = {}
    out = []
    for info in infos:
        target = effective(info, prepared, overlay)
        out.append((rules.decide(target), target))
        if info.prepare_name is not None:
            overlay[info.prepare_name] = info
    return out


def refused(decisions: list[tuple[Decision, StatementInfo]]) -> int:
    """The index of the statement whose decision refuses the message (deny before review, first first); -1."""
    best, rank = -1, 3
    for i, (d, _) in enumerate(decisions):
        r = {"deny": 0, "review": 1}.get(d.action, 3)
        if r < rank:
            best, rank = i, r
    return best
