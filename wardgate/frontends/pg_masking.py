"""The PostgreSQL side of result masking: from RowDescriptions to plans, and masking each kind of message.

The relay (frontends/postgres.py) decides *when* (which answer belongs to which statement); this module decides
*what*: which column is which (catalog names by table OID and column number), which plan a result gets, and the
rewritten bytes of DataRow runs, CopyData, ErrorResponse/NoticeResponse fields and NotificationResponse payloads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..catalog import Catalog
from ..masking.detectors import Prefilter
from ..masking.maskers import Style
from ..masking.policy import ColumnName, SessionMasking
from ..masking.results import Column, Counts, Kind, ResultPlan, mask_free_text
from ..protocols.postgres import decode, encode
from ..protocols.postgres.messages import Field
from ..protocols.postgres.types import column_kind

_PLAN_CACHE = 256
# Error and notice fields that can quote data: message, detail, hint, context (where), internal query.
_TEXT_FIELDS = frozenset(b"MDHWqp")


# (columns, skips, built-in detector bits, prefilter test): see SessionMasker.clean_test
CleanTest = tuple[tuple[int, ...], tuple[int, ...], int, Callable[[memoryview], bool]]


class NeedCatalog(Exception):
    """Column names must be looked up before this message can be handled; ``oids`` are the tables."""

    def __init__(self, oids: set[int]) -> None:
        super().__init__(f"catalog lookup needed for {len(oids)} relations")
        self.oids = oids


class _Rows:
    """DataRow layout for the plan: value offsets and re-framing."""

    @staticmethod
    def spans(buf: bytes | bytearray, pos: int) -> tuple[list[tuple[int, int] | None], int]:
        return decode.data_row_spans(buf, pos)

    @staticmethod
    def walk(buf: bytes, columns: tuple[int, ...]) -> tuple[list[int], list[int]]:
        return decode.walk_rows(buf, columns)

    @staticmethod
    def may_match(buf: bytes, columns: tuple[int, ...], skips: tuple[int, ...], prefilter: Prefilter) -> bool:
        return decode.rows_may_match(buf, columns, skips, prefilter.native_bits, prefilter.may_match)

    @staticmethod
    def encode(values: Sequence[bytes | None]) -> bytes:
        return encode.data_row(values)


ROWS = _Rows()


class SessionMasker:
    """One session's masking: plans by RowDescription, and the masked form of every message that carries data."""

    def __init__(self, masking: SessionMasking, catalog: Catalog) -> None:
        self.masking = masking
        self.catalog = catalog
        self.plans: dict[bytes, tuple[ResultPlan | None, CleanTest | None]] = {}
        self.oids: dict[bytes, frozenset[int]] = {}  # the tables a RowDescription names (its bytes -> OIDs)
        # binary COPY cannot change the length of a field: every detector is masked in the partial style there
        self.copy_binary_styles = dict.fromkeys(masking.styles, Style.PARTIAL)

    # --- result descriptions --------------------------------------------------------------------------------

    def check_names(self, frame: bytes) -> None:
        """Raise NeedCatalog if the columns of this RowDescription come from tables whose names are not known
        (only rules that mark columns need them)."""
        if not self.masking.has_columns:
            return
        oids = self.oids.get(frame)
        if oids is None:
            if len(self.oids) >= _PLAN_CACHE:
                self.oids.clear()
            oids = self.oids[frame] = frozenset(f.table_oid for f in decode.row_description(frame) if f.table_oid)
        if not oids:
            return
        missing = self.catalog.missing(oids)
        if missing:
            raise NeedCatalog(missing)

    def plan(self, frame: bytes) -> tuple[ResultPlan | None, CleanTest | None]:
        """The plan for rows described by this RowDescription (None when nothing in them can be masked), and its
        :meth:`clean_test`: asked for every statement, so both are kept by RowDescription."""
        try:
            return self.plans[frame]
        except KeyError:
            pass
        fields = decode.row_description(frame)
        plan: ResultPlan | None = ResultPlan(self.masking, [self._column(f) for f in fields])
        if plan is not None and plan.idle:
            plan = None
        if len(self.plans) >= _PLAN_CACHE:
            self.plans.clear()
        planned = self.plans[frame] = plan, self.clean_test(plan)
        return planned

    def _column(self, f: Field) -> Column:
        names: tuple[ColumnName, ...] = ()
        if f.table_oid and self.masking.has_columns:
            found = self.catalog.names(f.table_oid, f.column)
            if found is None:
                raise NeedCatalog({f.table_oid})
            names = found
        return Column(f.name, names, bool(f.table_oid), Kind(column_kind(f.type_oid, f.format == 1)))

    def forget(self) -> None:
        """Names may have changed (DDL, or a fresh catalog load): plans are rebuilt."""
        self.plans.clear()

    # --- messages -------------------------------------------------------------------------------------------

    def rows(self, plan: ResultPlan, run: bytes, counts: Counts) -> bytes:
        return plan.mask_rows(run, ROWS, counts)

    @staticmethod
    def clean_test(plan: ResultPlan | None) -> CleanTest | None:
        """The arguments of ``decode.rows_may_match`` for which a False answer means :meth:`rows` would return the
        run unchanged, or None when no such test exists for the plan (it marks whole columns, which are masked in
        every row). The relay asks it itself, from compiled code, so that a run with nothing to mask costs the row
        test and nothing more."""
        if plan is None or not plan.steps or plan.whole or plan.scanner is None or not plan.scans:
            return None
        prefilter = plan.scanner.prefilter
        return plan.scan_columns, plan.scan_skips, prefilter.native_bits, prefilter.may_match

    def _free(self, value: bytes, label: str, counts: Counts, styles: dict[str, Style] | None = None) -> bytes | None:
        m = self.masking
        return mask_free_text(m.scanner, styles or m.styles, m.detector_rules, m.key, value, label, counts)

    def fields(self, frame: bytes, counts: Counts) -> bytes:
        """An ErrorResponse or NoticeResponse with detector matches in its text fields masked (a unique
        violation's detail quotes the duplicate value)."""
        if self.masking.scanner is None or not self.masking.scanner.may_match(frame):
            return frame
        changed = False
        out = []
        for code, value in decode.raw_fields(frame):
            if code in _TEXT_FIELDS:
                masked = self._free(value, "error", counts)
                masked = b"[redacted]" if masked is None else masked
                changed = changed or masked is not value
                value = masked  # noqa: PLW2901
            out.append((code, value))
        return encode.fields_message(frame[0], out) if changed else frame

    def notification(self, frame: bytes, counts: Counts) -> bytes:
        if self.masking.scanner is None or not self.masking.scanner.may_match(frame):
            return frame
        pid, channel, payload = decode.notification(frame)
        masked = self._free(payload, "notification", counts)
        if masked is payload:
            return frame
        return encode.notification(pid, channel, b"" if masked is None else masked)

    def copy_data(self, frame: bytes, binary: bool, counts: Counts) -> bytes:
        """A CopyData row of COPY TO STDOUT. Text and CSV rows take masks of any length; binary COPY has field
        lengths in it, so there every match is masked in the partial style, which keeps lengths."""
        data = frame[5:]
        masked = self._free(data, "copy", counts, self.copy_binary_styles if binary else None)
        if masked is data:
            return frame
        if masked is None:  # the null style: the row's matches become a token (a COPY row cannot be NULL)
            masked = self._free(data, "copy", {}, dict.fromkeys(self.masking.styles, Style.FULL)) or b""
        return encode.copy_data(masked)
