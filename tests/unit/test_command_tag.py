"""A CommandComplete's tag and the row count in it, read as the relay reads them once per statement: the same
answers as the plain string methods they replaced (the specification below), over tags PostgreSQL sends and
any other text; a count is read from at most 20 digits."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from wardgate.protocols.postgres import decode


def spec_tag(frame: bytes) -> str:
    return frame[5:].rstrip(b"\0").decode("utf-8", "replace")


def spec_rows(tag: str) -> int:
    """-1: no count. More than 20 digits is no count either (a 64-bit count has at most 20)."""
    last = tag.rsplit(" ", 1)[-1]
    ok = last.isascii() and last.isdigit() and " " in tag and len(last) <= 20
    return int(last) if ok else -1


def frame(body: bytes) -> bytes:
    return b"C" + (len(body) + 4).to_bytes(4, "big") + body


TAGS = st.one_of(
    st.sampled_from(["SELECT 1", "SELECT 0", "INSERT 0 5", "UPDATE 12", "DELETE 3", "COPY 1000000", "MERGE 2",
                     "FETCH 99999999999999999999", "FETCH 184467440737095516150", "FETCH 18446744073709551615",
                     "CREATE TABLE", "BEGIN", "SET", "MOVE 4", "SELECT", " 5", "5",
                     "SELECT ", "SELECT 1 ", "SELECT \u0661\u0662", "SELECT \u00b9", "INSERT 0 \uff15"]),
    st.text(alphabet="0123456789 SELCTéx\x00", max_size=12), st.text(max_size=12),
)


@given(TAGS, st.integers(0, 3))
@example("SELECT 1", 1)
def test_tag_and_rows_as_the_string_methods_give(tag: str, nuls: int) -> None:
    f = frame(tag.encode("utf-8", "surrogatepass") + b"\0" * nuls)
    assert decode.command_tag(f) == spec_tag(f)
    assert decode.tag_rows(f) == spec_rows(spec_tag(f))


@given(st.binary(max_size=16))
def test_any_bytes(body: bytes) -> None:
    f = frame(body)
    assert decode.command_tag(f) == spec_tag(f)
    assert decode.tag_rows(f) == spec_rows(spec_tag(f))


def test_a_digit_run_of_any_length_is_read_in_bounded_work() -> None:
    assert decode.tag_rows(frame(b"SELECT " + b"9" * 100_000 + b"\0")) == -1
    assert decode.tag_rows(frame(b"SELECT 0000000000000000000042\0")) == -1  # 22 digits
    assert decode.tag_rows(frame(b"SELECT 00000000000000000042\0")) == 42  # 20
