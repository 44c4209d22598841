"""Masking configuration: rules, custom detectors and the hash key are validated whole at load, errors name their
path in the file, and the hash key is a reference whose value no error message ever shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from wardgate.config import Config, ConfigError, load_config
from wardgate.masking import BUILTIN_DETECTORS, Style
from wardgate.masking.policy import ColumnPattern
from wardgate.pipeline import masking_policy

BASE = """
tls: {self_signed: true}
connections:
  shop:
    upstream: postgresql://app@db.internal:5433/shop
  hr:
    upstream: postgresql://app@db.internal:5433/hr
"""
KEY_VAR = "WG_TEST_MASK_KEY"
KEY = "mask-key-0123456789-abcdef"  # the secret: it must never show in an error
BUILTINS = tuple(BUILTIN_DETECTORS)

FULL = """
masking:
  hash_key: env:WG_TEST_MASK_KEY
  catalog_ttl: 30s
  detectors:
    - name: employee_id
      regex: '\\bEMP-\\d{6}\\b'
      description: staff numbers
  rules:
    - name: customer-pii
      columns: [customers.email, shop.customers.phone, "*.ssn", "customers.*_card", "cust?mers.note"]
      style: partial
      connections: [shop]
      groups: [support]
      exempt_groups: [dpo]
    - name: secrets
      detect: [all, employee_id]
      style: hash
    - name: cards
      columns: [orders.card]
      detect: [credit_card]
      style: "null"
      connections: [shop, hr]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "wardgate.yaml"
    p.write_text(text)
    return p


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    assert KEY not in str(exc.value)
    return exc.value.problems


def _problem(tmp_path: Path, masking: str) -> str:
    """The one problem of BASE + this masking section."""
    problems = _problems(tmp_path, BASE + masking)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, KEY)


def _rule(body: str, hash_key: bool = False) -> str:
    """A masking section with one rule (a YAML flow mapping's body)."""
    return "masking:\n" + ("  hash_key: env:WG_TEST_MASK_KEY\n" if hash_key else "") + f"  rules:\n    - {{{body}}}\n"


# --- a valid section ----------------------------------------------------------------------------------------------


def test_a_full_masking_section(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE + FULL))
    m = cfg.masking
    assert m.hash_key is not None and m.hash_key.value == KEY and str(m.hash_key) == "env:WG_TEST_MASK_KEY"
    assert KEY not in repr(cfg) and KEY not in repr(m)
    assert m.catalog_ttl == 30.0
    assert [d.name for d in m.detectors] == ["employee_id"] and m.detectors[0].description == "staff numbers"
    assert [r.name for r in m.rules] == ["customer-pii", "secrets", "cards"]
    assert m.rules[2].style == "null"

    policy = masking_policy(cfg)
    assert policy.key == KEY.encode()
    pii, secrets, cards = policy.rules
    assert pii.style is Style.PARTIAL and secrets.style is Style.HASH and cards.style is Style.NULL
    assert pii.columns == (
        ColumnPattern("*", "customers", "email"),
        ColumnPattern("shop", "customers", "phone"),
        ColumnPattern("*", "*", "ssn"),
        ColumnPattern("*", "customers", "*_card"),
        ColumnPattern("*", "cust?mers", "note"),
    )
    assert pii.connections == {"shop"} and pii.groups == {"support"} and pii.exempt_groups == {"dpo"}
    assert secrets.detectors == (*BUILTINS, "employee_id") and secrets.columns == ()
    assert cards.detectors == ("credit_card",) and cards.connections == {"shop", "hr"}

    masking, exempt = policy.for_session("shop", ["support"])
    assert masking is not None and exempt == () and [r.name for r in masking.rules] == ["customer-pii", "secrets",
                                                                                         "cards"]
    assert masking.scanner is not None
    assert [d.name for d in masking.scanner.detectors] == ["employee_id", *BUILTINS]  # custom first
    assert masking.styles["credit_card"] is Style.HASH  # "secrets" names it before "cards" does
    masking, exempt = policy.for_session("hr", ["support", "dpo"])
    assert masking is not None and exempt == () and [r.name for r in masking.rules] == ["secrets", "cards"]
    assert policy.for_session("shop", ["dpo", "support"])[1] == ("customer-pii",)


def test_no_masking_section_means_no_rules(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE))
    assert cfg.masking.rules == [] and cfg.masking.hash_key is None
    policy = masking_policy(cfg)
    assert policy.rules == () and policy.for_session("shop", ["any"]) == (None, ())


def test_detect_all_expands_to_the_thirteen_built_ins(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE + _rule("name: r, detect: [all]")))
    (rule,) = masking_policy(cfg).rules
    assert len(BUILTINS) == 13 and rule.detectors == BUILTINS
    assert rule.style is Style.PARTIAL  # the default
    cfg = load_config(_write(tmp_path, BASE + _rule("name: r, detect: [email, all, ssn]")))
    (rule,) = masking_policy(cfg).rules
    assert rule.detectors[0] == "email" and sorted(rule.detectors) == sorted(BUILTINS)  # each once


def test_a_custom_detector_named_in_detect_is_accepted(tmp_path: Path) -> None:
    text = BASE + """
masking:
  detectors:
    - {name: employee_id, regex: 'EMP-\\d{6}'}
    - {name: plate, regex: '(?i)[a-z]{2}-\\d{3}'}
  rules:
    - {name: r, detect: [plate, email], style: full}
"""
    policy = masking_policy(load_config(_write(tmp_path, text)))
    assert policy.rules[0].detectors == ("plate", "email")
    assert set(policy.custom) == {"employee_id", "plate"}
    masking, _ = policy.for_session("shop", [])
    assert masking is not None and masking.scanner is not None
    assert [d.name for d in masking.scanner.detectors] == ["plate", "email"]  # only the detectors rules name
    assert [m.detector for m in masking.scanner.find(b"AB-123 and EMP123456, a@b.co")] == ["plate", "email"]


def test_hash_key_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "mask.key").write_text(KEY + "\n")
    cfg = load_config(_write(tmp_path, BASE + _rule("name: r, detect: [email], style: hash").replace(
        "masking:\n", "masking:\n  hash_key: file:mask.key\n")))
    assert cfg.masking.hash_key is not None and cfg.masking.hash_key.value == KEY  # relative to the file, no \n
    assert masking_policy(cfg).key == KEY.encode()


@pytest.mark.parametrize("key", ["0123456789abcdef", "ëëëëëëëë"])  # 16 bytes (the second: 8 characters)
def test_a_hash_key_of_sixteen_bytes_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv(KEY_VAR, key)
    cfg = load_config(_write(tmp_path, BASE + _rule("name: r, detect: [email], style: hash", hash_key=True)))
    assert masking_policy(cfg).key == key.encode()


# --- errors -------------------------------------------------------------------------------------------------------


def test_unknown_detector_names_the_rule(tmp_path: Path) -> None:
    problem = _problem(tmp_path, _rule("name: r, detect: [email, emial]"))
    assert "masking.rules[0] (r): no detector named emial" in problem
    assert "known: all, " in problem and "email" in problem


def test_unknown_detector_in_a_later_rule(tmp_path: Path) -> None:
    problem = _problem(tmp_path, "masking:\n  rules:\n    - {name: a, detect: [all]}\n"
                                 "    - {name: b, detect: [employee_id]}\n")  # a custom detector never declared
    assert "masking.rules[1] (b): no detector named employee_id" in problem


def test_duplicate_rule_name(tmp_path: Path) -> None:
    problem = _problem(tmp_path, "masking:\n  rules:\n    - {name: pii, detect: [email]}\n"
                                 "    - {name: pii, columns: [customers.email]}\n")
    assert "masking.rules[1] (pii): the rule name 'pii' is already taken" in problem


def test_masking_rule_names_are_their_own_namespace(tmp_path: Path) -> None:
    text = BASE + "rules:\n  - {name: pii, action: deny, when: {tables: [secrets]}}\n" + _rule("name: pii, "
                                                                                                  "detect: [email]")
    assert [r.name for r in load_config(_write(tmp_path, text)).masking.rules] == ["pii"]


def test_unknown_connection(tmp_path: Path) -> None:
    problem = _problem(tmp_path, _rule("name: r, detect: [email], connections: [shop, nope]"))
    assert "masking.rules[0] (r): no such connection: nope" in problem


def test_hash_style_needs_a_hash_key(tmp_path: Path) -> None:
    problem = _problem(tmp_path, _rule("name: r, columns: [customers.email], style: hash"))
    assert "masking.rules[0] (r): the hash style needs masking.hash_key" in problem


def test_a_short_hash_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, "fifteen-bytes-k")
    problem = _problem(tmp_path, _rule("name: r, detect: [email], style: hash", hash_key=True))
    assert "masking.hash_key: the key must be at least 16 bytes" in problem
    assert "fifteen-bytes-k" not in problem
    monkeypatch.setenv(KEY_VAR, "")
    assert "masking.hash_key: the key must be at least 16 bytes" in _problem(tmp_path, _rule(
        "name: r, detect: [email], style: hash", hash_key=True))


def test_a_short_hash_key_is_refused_even_when_no_rule_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, "short")
    assert "at least 16 bytes" in _problem(tmp_path, _rule("name: r, detect: [email]", hash_key=True))


def test_an_inline_hash_key_is_refused(tmp_path: Path) -> None:
    masking = _rule("name: r, detect: [email], style: hash").replace("masking:\n", f"masking:\n  hash_key: {KEY}\n")
    problem = _problem(tmp_path, masking)
    assert problem == "masking.hash_key: secrets are never written inline: use env:NAME or file:PATH"


def test_a_missing_hash_key_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VAR)
    problem = _problem(tmp_path, _rule("name: r, detect: [email], style: hash", hash_key=True))
    assert problem == f"masking.hash_key: environment variable {KEY_VAR} is not set"


@pytest.mark.parametrize(("detector", "message"), [
    ("{name: x, regex: '('}", "masking.detectors[0]: custom detector 'x': missing )"),
    ("{name: x, regex: '[a-'}", "masking.detectors[0]: custom detector 'x': "),
    ("{name: x, regex: 'a*'}", "masking.detectors[0]: custom detector 'x': the regex matches the empty string"),
    ("{name: x, regex: '(?:EMP)?'}", "the regex matches the empty string"),
    ("{name: x, regex: '(a)\\1'}", "masking.detectors[0]: custom detector 'x': backreferences are not supported"),
    ("{name: x, regex: '(?P<n>a)'}", "named groups, backreferences and conditionals are not supported"),
    ("{name: x, regex: '[é]'}", "non-ASCII character"),
    ("{name: email, regex: 'x'}", "masking.detectors[0]: the detector name 'email' is already taken"),
    ("{name: ipv4, regex: 'x'}", "masking.detectors[0]: the detector name 'ipv4' is already taken"),
])
def test_bad_custom_detectors(tmp_path: Path, detector: str, message: str) -> None:
    problem = _problem(tmp_path, f"masking:\n  detectors:\n    - {detector}\n")
    assert message in problem


def test_two_custom_detectors_with_one_name(tmp_path: Path) -> None:
    problem = _problem(tmp_path, "masking:\n  detectors:\n    - {name: emp, regex: 'EMP-\\d+'}\n"
                                 "    - {name: emp, regex: 'E-\\d+'}\n")
    assert "masking.detectors[1]: the detector name 'emp' is already taken" in problem


@pytest.mark.parametrize("name", ["Employee", "1st", "emp-id", "a" * 41, ""])
def test_custom_detector_names(tmp_path: Path, name: str) -> None:
    assert _problem(tmp_path, f"masking:\n  detectors:\n    - {{name: '{name}', regex: x}}\n").startswith(
        "masking.detectors.0.name: ")


def test_a_custom_detector_named_all_is_refused(tmp_path: Path) -> None:
    text = BASE + "masking:\n  detectors:\n    - {name: all, regex: 'EMP-\\d{6}'}\n" + _rule(
        "name: r, detect: [all]").removeprefix("masking:\n")
    problems = _problems(tmp_path, text)
    assert "masking.detectors[0]: the detector name 'all' is already taken" in problems[0]


def test_a_rule_needs_columns_or_detect(tmp_path: Path) -> None:
    assert _problem(tmp_path, _rule("name: r, style: full")) == (
        "masking.rules.0: a masking rule needs columns, detect, or both")
    assert _problem(tmp_path, _rule("name: r, columns: [], detect: []")) == (
        "masking.rules.0: a masking rule needs columns, detect, or both")


@pytest.mark.parametrize("pattern", ["email", "a.b.c.d", "a..b", ".a.b", "a.b.", "a b.c", "customers. email"])
def test_bad_column_patterns(tmp_path: Path, pattern: str) -> None:
    problem = _problem(tmp_path, _rule(f"name: r, columns: [customers.email, '{pattern}']"))
    assert problem == (f"masking.rules.0.columns: {pattern!r} is not a column pattern: use table.column or "
                       "schema.table.column (wildcards * and ?)")


@pytest.mark.parametrize("pattern", ["customers.email", "shop.customers.email", "*.email", "*.*.email",
                                     "customers.*_ssn", "c?stomers.e*", "Customers.Email", "public.t1.c_2"])
def test_good_column_patterns(tmp_path: Path, pattern: str) -> None:
    cfg = load_config(_write(tmp_path, BASE + _rule(f"name: r, columns: ['{pattern}']")))
    assert masking_policy(cfg).rules[0].columns == (ColumnPattern.parse(pattern),)


@pytest.mark.parametrize(("body", "where"), [
    ("name: r, detect: [email], style: redact", "masking.rules.0.style: "),
    ("name: R, detect: [email]", "masking.rules.0.name: "),
    ("name: r, detect: [email], stlye: full", "masking.rules.0.stlye: unknown key"),
    ("name: r, detect: email", "masking.rules.0.detect: "),
])
def test_rule_fields(tmp_path: Path, body: str, where: str) -> None:
    assert _problem(tmp_path, _rule(body)).startswith(where)


def test_unquoted_null_style_is_the_null_style(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE + _rule("name: r, detect: [email], style: null")))
    assert masking_policy(cfg).rules[0].style is Style.NULL


def test_unknown_key_in_the_masking_section(tmp_path: Path) -> None:
    assert _problem(tmp_path, "masking:\n  hashkey: env:WG_TEST_MASK_KEY\n") == "masking.hashkey: unknown key"


# --- the hash key never shows -------------------------------------------------------------------------------------

ERRORS_WITH_A_KEY = [
    _rule("name: r, detect: [emial], style: hash", hash_key=True),
    _rule("name: r, detect: [email], style: hash, connections: [nope]", hash_key=True),
    _rule("name: r, columns: [email], style: hash", hash_key=True),
    _rule("name: r, style: hash", hash_key=True),
    _rule("name: r, detect: [email], style: hash, bogus: 1", hash_key=True),
    "masking:\n  hash_key: env:WG_TEST_MASK_KEY\n  detectors:\n    - {name: x, regex: '('}\n",
    "masking:\n  hash_key: env:WG_TEST_MASK_KEY\n  catalog_ttl: soon\n",
    f"masking:\n  hash_key: {KEY}\n",  # inline
    f"masking:\n  hash_key: [{KEY}]\n",
    f"masking:\n  hash_key: {{value: {KEY}}}\n",
    f"masking:\n  hash_key: env:{KEY}\n",  # the key where a variable's name belongs: not set
]


@pytest.mark.parametrize("masking", ERRORS_WITH_A_KEY)
def test_error_messages_never_show_the_hash_key(tmp_path: Path, masking: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, BASE + masking))
    if "env:" + KEY not in masking:
        assert KEY not in str(exc.value) and all(KEY not in p for p in exc.value.problems)
    assert exc.value.problems


def test_a_short_key_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = "s3cr3t-sh0rt"
    monkeypatch.setenv(KEY_VAR, short)
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, BASE + _rule("name: r, detect: [email], style: hash", hash_key=True)))
    assert short not in str(exc.value)


def test_the_loaded_key_is_not_in_the_config_repr(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE + FULL))
    assert KEY not in repr(cfg) and KEY not in str(cfg)
    assert isinstance(cfg, Config) and cfg.masking.hash_key is not None
    assert KEY not in repr(cfg.masking.hash_key) and str(cfg.masking.hash_key) == "env:WG_TEST_MASK_KEY"
