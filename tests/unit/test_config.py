"""Configuration errors name their path in the file; secrets are references, never inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from wardgate.config import ConfigError, Overrides, load_config, parse_duration

BASE = """
tls: {self_signed: true}
connections:
  shop:
    upstream: postgresql://app@db.internal:5433/shop
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "wardgate.yaml"
    p.write_text(text)
    return p


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    return exc.value.problems


def test_valid_config_resolves_upstream_and_relative_paths(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE))
    shop = cfg.connections["shop"]
    assert (shop.host, shop.port, shop.database, shop.user) == ("db.internal", 5433, "shop", "app")
    assert cfg.store == f"sqlite:///{tmp_path / 'wardgate.db'}"
    assert cfg.data_dir == (tmp_path / ".wardgate").resolve()


def test_unknown_key_is_reported_with_its_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, BASE + "    sslmod: require\n")
    assert problems == ["connections.shop.sslmod: unknown key"]


def test_wrong_type_is_reported_with_its_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, BASE + "    connect_timeout: soon\n")
    assert len(problems) == 1 and problems[0].startswith("connections.shop.connect_timeout:")


def test_inline_secret_is_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, BASE + "    password: hunter2\n")
    assert problems == ["connections.shop.password: secrets are never written inline: use env:NAME or file:PATH"]
    assert "hunter2" not in "".join(problems)


def test_missing_env_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WG_TEST_MISSING", raising=False)
    problems = _problems(tmp_path, BASE + "    password: env:WG_TEST_MISSING\n")
    assert problems == ["connections.shop.password: environment variable WG_TEST_MISSING is not set"]


def test_env_and_file_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_TEST_PW", "s3cret")
    cfg = load_config(_write(tmp_path, BASE + "    password: env:WG_TEST_PW\n"))
    pw = cfg.connections["shop"].password
    assert pw is not None and pw.value == "s3cret" and "s3cret" not in repr(cfg)
    (tmp_path / "pw.txt").write_text("from-file\n")
    cfg = load_config(_write(tmp_path, BASE + "    password: file:pw.txt\n"))
    pw = cfg.connections["shop"].password
    assert pw is not None and pw.value == "from-file"
    problems = _problems(tmp_path, BASE + "    password: file:nope.txt\n")
    assert problems[0].startswith("connections.shop.password: cannot read secret file")


def test_password_in_url_is_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, BASE.replace("app@", "app:pw@"))
    assert len(problems) == 1 and "must not contain a password" in problems[0] and ":pw@" not in problems[0]


def test_verify_full_needs_a_root_certificate(tmp_path: Path) -> None:
    problems = _problems(tmp_path, BASE + "    sslmode: verify-full\n")
    assert "sslrootcert" in problems[0]


def test_no_tls_and_no_plaintext_is_an_error(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "connections: {}\n")
    assert "tls" in problems[0]
    cfg = load_config(_write(tmp_path, "listen: {allow_plaintext: true}\n"))
    assert not cfg.tls_enabled


def test_overrides_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, BASE)
    monkeypatch.setenv("WARDGATE_LISTEN_POSTGRES", "127.0.0.1:25432")
    cfg = load_config(path, Overrides(store="postgresql://u@h/db"))
    assert cfg.store == "postgresql://u@h/db" and cfg.listen.postgres == "127.0.0.1:25432"
    with pytest.raises(ConfigError, match="listen-postgres"):
        load_config(path, Overrides(listen_postgres="nowhere"))


def test_not_yaml_and_not_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in _problems(tmp_path, "a: [")[0]
    assert "mapping" in _problems(tmp_path, "- a\n- b\n")[0]


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), (90, 90), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1s", 0, True, "1w"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


REVIEW_RULE = """
rules:
  - name: orders-review
    action: review
    when: {kinds: [delete]}
"""


@pytest.mark.parametrize(("extra", "problem"), [
    (REVIEW_RULE, "action review needs approvers"),
    ("policy: {default: review}\n", "policy.default is review: set policy.review"),
    (REVIEW_RULE.replace("action: review", "action: deny") + "    review: {approvers: [sre]}\n",
     "a review block belongs to rules whose action is review"),
    (REVIEW_RULE + "    review: {approvers: []}\n", "rules.0.review.approvers"),
    (REVIEW_RULE + "    review: {approvers: [sre, sre]}\n", "distinct"),
    (REVIEW_RULE + "    review: {approvers: [sre], min_approvals: 0}\n", "rules.0.review.min_approvals"),
    (REVIEW_RULE + "    review: {approvers: [sre], expires_after: 10s, notice_interval: 1m}\n",
     "notice_interval must not be longer than expires_after"),
])
def test_review_settings_are_checked(tmp_path: Path, extra: str, problem: str) -> None:
    problems = _problems(tmp_path, BASE + extra)
    assert any(problem in p for p in problems), problems


def test_review_settings_resolve(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE + REVIEW_RULE + "    review: {approvers: [sre, dba], all_groups: true}\n"
                             + "policy: {review: {approvers: [ops]}}\n"))
    own = cfg.review_for("orders-review")
    assert own is not None and own.approvals_needed == 2 and own.expires_after == 900
    default = cfg.review_for("default")
    assert default is not None and default.approvers == ["ops"]
