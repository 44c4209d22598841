"""A throwaway PostgreSQL cluster of the tests' own, for server behaviour the shared server cannot give.

The shared server trusts every local login and has TLS off, so upstream password methods (scram-sha-256, md5,
password) and upstream TLS need a private cluster: ``pg_cluster()`` runs ``initdb`` and ``pg_ctl`` from
``pg_config --bindir`` in a fresh temporary directory, with a pg_hba.conf written by the caller, listening only
on 127.0.0.1 (unix socket in the temporary directory), optionally with TLS using a certificate issued by a test
``CertAuthority``. PostgreSQL refuses to run as root, so when the tests run as root the cluster runs as the
``postgres`` OS user. The cluster is stopped and its directory deleted on exit.

Anything that prevents the cluster from starting raises ``PgClusterError`` with the reason (and the server's
log when there is one), for a fixture to turn into a test failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FALLBACK_BINDIR = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
_START_ATTEMPTS = 3  # a port picked free can be taken by someone else before the server binds it


class PgClusterError(Exception):
    """The private cluster could not be set up; the message says why."""


# --- certificates -------------------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class CertAuthority:
    """A test certificate authority that issues server certificates."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str) -> CertAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, cert)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write_cert(self, path: Path) -> Path:
        path.write_bytes(self.cert_pem())
        return path

    def issue_server(self, hosts: Sequence[str]) -> tuple[bytes, bytes]:
        """A server certificate for ``hosts`` (IP addresses or DNS names): (certificate PEM, key PEM)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        now = dt.datetime.now(dt.UTC)
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


# --- the cluster ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunAs:
    """Who the server processes run as: ``uid`` None means the current user."""

    name: str
    uid: int | None = None
    gid: int | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@dataclass(frozen=True)
class PgCluster:
    """A running private cluster. Tests reach it over TCP at ``host:port``; the admin uses the unix socket."""

    root: Path
    port: int
    ssl: bool
    bindir: Path
    run_as: str
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={SUPERUSER}"

    def connect(self, dbname: str = "postgres", **kw: Any) -> psycopg.Connection[Any]:
        """A superuser connection over the unix socket (trusted by the pg_hba.conf the caller wrote)."""
        return psycopg.connect(self.admin_dsn(dbname), **kw)

    def url(self, user: str, dbname: str) -> str:
        """The ``postgresql://USER@HOST:PORT/DB`` form the gateway's ``upstream:`` key takes."""
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def find_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live: ``pg_config --bindir``, else the Debian path for PostgreSQL 15."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True)
            candidates.append(Path(out.stdout.strip()))
    candidates.append(FALLBACK_BINDIR)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PgClusterError(
        "cannot start a private PostgreSQL cluster: no initdb/pg_ctl found in "
        + ", ".join(str(c) for c in candidates)
        + " (install the PostgreSQL 15 server package, e.g. apt-get install postgresql-15)"
    )


def _run_as(os_user: str) -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(pwd.getpwuid(os.geteuid()).pw_name)
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise PgClusterError(
            f"cannot start a private PostgreSQL cluster: the tests run as root, PostgreSQL refuses to run as "
            f"root, and there is no {os_user!r} OS user to run it as (create one: useradd --system {os_user})"
        ) from None
    return _RunAs(os_user, entry.pw_uid, entry.pw_gid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chown_tree(root: Path, who: _RunAs) -> None:
    if who.uid is None or who.gid is None:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, who.uid, who.gid)
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), who.uid, who.gid, follow_symlinks=False)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def pg_cluster(*, hba: Sequence[str], ca: CertAuthority | None = None, os_user: str = SUPERUSER,
               settings: Mapping[str, str] | None = None) -> Iterator[PgCluster]:
    """Start a private cluster with the given pg_hba.conf lines; TLS on (certificate from ``ca``) when ``ca``.

    The certificate names 127.0.0.1 and localhost. ``settings`` are extra postgresql.conf lines (values
    written as given, so quote strings). The superuser is ``postgres``; reach it with ``PgCluster.connect()``
    (the caller's ``hba`` must trust it on the unix socket: ``local all postgres trust``).
    """
    bindir = find_bindir()
    who = _run_as(os_user)
    root = Path(tempfile.mkdtemp(prefix="wgpg-"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C", "HOME": str(root),
           "TZ": "UTC"}

    def run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, timeout=timeout,
                                  check=False, **who.popen_kwargs())
        except (OSError, subprocess.SubprocessError) as exc:
            raise PgClusterError(f"cannot run {cmd[0]} as {who.name}: {exc}") from exc

    started = False
    cluster: PgCluster | None = None
    try:
        root.chmod(0o700)
        (root / "sock").mkdir()
        if ca is not None:
            cert_pem, key_pem = ca.issue_server(["127.0.0.1", "localhost"])
            (root / "server.crt").write_bytes(cert_pem)
            fd = os.open(root / "server.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key_pem)
        _chown_tree(root, who)
        init = run(str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER, "-A", "trust", "-E",
                   "UTF8", "--locale=C", "-N", "--no-instructions")
        if init.returncode != 0:
            raise PgClusterError(f"initdb failed ({init.returncode}) running as {who.name}:\n"
                                 f"{init.stdout}{init.stderr}")
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{root / 'sock'}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "'16MB'",
            "max_connections": "40",
            "max_wal_senders": "0",
            "wal_level": "minimal",
            "log_connections": "on",
            "password_encryption": "'scram-sha-256'",
            "ssl": "on" if ca is not None else "off",
            **({"ssl_cert_file": f"'{root / 'server.crt'}'", "ssl_key_file": f"'{root / 'server.key'}'"}
               if ca is not None else {}),
            **(settings or {}),
        }
        data = root / "data"
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf_file:
            conf_file.write("\n# wardgate tests\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
        (data / "pg_hba.conf").write_text("".join(f"{line}\n" for line in hba), encoding="utf-8")
        _chown_tree(root, who)

        log_path = root / "server.log"
        problem = ""
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            start = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log_path), "-o", f"-p {port}", "-w",
                        "-t", "60", "start", timeout=90)
            if start.returncode == 0:
                started = True
                cluster = PgCluster(root, port, ca is not None, bindir, who.name)
                break
            log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
            problem = (f"pg_ctl start failed ({start.returncode}) running as {who.name}:\n{start.stdout}"
                       f"{start.stderr}\nserver log:\n{_tail(log_text)}")
            if "already in use" not in log_text:
                break
            log_path.unlink(missing_ok=True)
        if cluster is None:
            raise PgClusterError(problem)
        try:
            cluster.connect(connect_timeout=10).close()
        except psycopg.Error as exc:
            raise PgClusterError(f"the private cluster started but its superuser cannot connect over "
                                 f"{cluster.socket_dir}: {exc}\nserver log:\n{_tail(cluster.log())}") from exc
        yield cluster
    finally:
        if started:
            stop = run(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "-t", "30",
                       "stop", timeout=60)
            if stop.returncode != 0:
                _kill_postmaster(root / "data")
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl cannot stop the server this module started: kill it by its recorded pid."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
