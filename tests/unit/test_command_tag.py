"""A CommandComplete's tag and the row count in it, read as the relay reads them once per statement: the same
answers as the plain string methods they replaced (the specification below), over tags PostgreSQL sends and
any other text."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from wardgate.protocols.postgres import decode


def spec_tag(frame: bytes) -> str:
    return frame[5:].rstrip(b"\0").decode("utf-8", "replace")


def spec_rows(tag: str) -> int | None:
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isascii() and last.isdigit() and " " in tag else None


def frame(body: bytes) -> bytes:
    return b"C" + (len(body) + 4).to_bytes(4, "big") + body


TAGS = st.one_of(
    st.sampled_from(["SELECT 1", "SELECT 0", "INSERT 0 5", "UPDATE 12", "DELETE 3", "COPY 1000000", "MERGE 2",
                     "FETCH 99999999999999999999", "CREATE TABLE", "BEGIN", "SET", "MOVE 4", "SELECT", " 5", "5",
                     "SELECT ", "SELECT 1 ", "SELECT \u0661\u0662", "SELECT \u00b9", "INSERT 0 \uff15"]),
    st.text(alphabet="0123456789 SELCTéx\x00", max_size=12), st.text(max_size=12),
)


@given(TAGS, st.integers(0, 3))
@example("SELECT 1", 1)
def test_tag_and_rows_as_the_string_methods_give(tag: str, nuls: int) -> None:
    f = frame(tag.encode("utf-8", "surrogatepass") + b"\0" * nuls)
    assert decode.command_tag(f) == spec_tag(f)
    text = decode.command_tag(f)
    assert decode.rows_from_tag(text) == spec_rows(text)


@given(st.binary(max_size=16))
def test_any_bytes(body: bytes) -> None:
    f = frame(body)
    assert decode.command_tag(f) == spec_tag(f)
    assert decode.rows_from_tag(spec_tag(f)) == spec_rows(spec_tag(f))
