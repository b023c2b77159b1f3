"""TLS for the controller: a self-made cloud CA, server certificates and CA pinning for agents.

The controller either generates its own CA and server certificate (kept in ``tls_dir``) or is
given a certificate chain and key. Agents bootstrap trust with a pin (``sha256:<hex>`` of the
CA certificate's DER) via :func:`fetch_pinned_ca`, then use :func:`client_ssl_context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "PinMismatch",
    "ServerTls",
    "client_ssl_context",
    "ensure_server_tls",
    "fetch_pinned_ca",
    "fingerprint_of_pem",
    "parse_pin",
    "server_ssl_context",
]

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=825)
RENEW_BEFORE = timedelta(days=30)
CLOCK_SKEW = timedelta(minutes=5)
MAX_CA_PEM = 64 * 1024
CA_PATH = "/agent/ca.pem"

_PIN_HEX = re.compile(r"[0-9a-f]{2}(?::?[0-9a-f]{2}){31}")

_PrivateKey = ec.EllipticCurvePrivateKey
_Name = x509.DNSName | x509.IPAddress


class PinMismatch(ValueError):
    """The controller's CA does not match the pinned fingerprint."""


@dataclass(frozen=True)
class ServerTls:
    """Paths of the server's TLS material and the CA fingerprint clients pin."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    ca_fingerprint: str


# --------------------------------------------------------------------------- files


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a temp file created with ``mode``, then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        try:
            os.fchmod(fd, mode)  # exact mode regardless of umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _ensure_dir(tls_dir: Path) -> None:
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if tls_dir.stat().st_mode & 0o777 != 0o700:
        os.chmod(tls_dir, 0o700)


def _tighten(path: Path, mode: int) -> None:
    """Remove permission bits beyond ``mode`` from an existing file."""
    current = path.stat().st_mode & 0o777
    if current & ~mode:
        os.chmod(path, current & mode)


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_certs(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ValueError(f"{what}: no valid PEM certificate found ({exc})") from None
    if not certs:
        raise ValueError(f"{what}: no PEM certificate found")
    return certs


def _load_key(path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    return _spki(cert.public_key()) == _spki(key.public_key())


def _not_after(cert: x509.Certificate) -> datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- names


def _parse_names(names: Sequence[str]) -> list[_Name]:
    """Turn host names / IP literals into SAN entries (deduplicated, order kept)."""
    if isinstance(names, str):
        raise TypeError("names must be a sequence of strings, not a single string")
    out: list[_Name] = []
    seen: set[object] = set()
    for raw in names:
        name = raw.strip()
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        if not name:
            raise ValueError(f"empty host name in {list(names)!r}")
        try:
            entry: _Name = x509.IPAddress(ipaddress.ip_address(name))
            ident: object = entry.value
        except ValueError:
            dns = name.rstrip(".").lower()
            if not dns.isascii():
                dns = dns.encode("idna").decode("ascii")
            entry = x509.DNSName(dns)
            ident = dns
        if ident not in seen:
            seen.add(ident)
            out.append(entry)
    if not out:
        raise ValueError("at least one server name is required")
    return out


def _san_covers(cert: x509.Certificate, wanted: list[_Name]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have: set[object] = set(san.get_values_for_type(x509.IPAddress))
    have |= {d.lower() for d in san.get_values_for_type(x509.DNSName)}
    return all(
        (w.value if isinstance(w, x509.IPAddress) else w.value.lower()) in have for w in wanted
    )


# --------------------------------------------------------------------------- issuing


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a server key only signs its TLS handshakes."""
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _new_ca() -> tuple[x509.Certificate, _PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"mininova cloud CA {secrets.token_hex(4)}")]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(signs_certificates=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server_cert(
    ca_cert: x509.Certificate, ca_key: _PrivateKey, sans: list[_Name]
) -> tuple[x509.Certificate, _PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    not_after = min(now + SERVER_VALIDITY, _not_after(ca_cert))
    cn = str(sans[0].value)[:64]  # CN is limited to 64 characters; the SANs are what matter
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_or_create_ca(tls_dir: Path) -> x509.Certificate:
    ca_pem, ca_key_path = tls_dir / "ca.pem", tls_dir / "ca.key"
    if not ca_pem.exists():
        # No CA certificate means nothing can have been pinned yet: start a fresh CA.
        cert, key = _new_ca()
        _write_atomic(ca_key_path, _key_pem(key), 0o600)
        _write_atomic(ca_pem, _cert_pem(cert), 0o644)
        return cert
    if not ca_key_path.exists():
        raise ValueError(
            f"{ca_pem} exists but its key {ca_key_path} is missing; restore the key or remove "
            f"{ca_pem} to create a new CA (agents pinned to the old CA will need a new pin)"
        )
    _tighten(ca_key_path, 0o600)
    cert = _load_certs(ca_pem.read_bytes(), str(ca_pem))[0]
    if not _key_matches(cert, _load_key(ca_key_path)):
        raise ValueError(f"{ca_key_path} does not match the CA certificate {ca_pem}")
    return cert


def _server_cert_usable(tls_dir: Path, ca_cert: x509.Certificate, sans: list[_Name]) -> bool:
    cert_path, key_path = tls_dir / "server.pem", tls_dir / "server.key"
    try:
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        leaf.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, IndexError, InvalidSignature):
        return False
    return (
        _key_matches(leaf, key)
        and _not_after(leaf) - datetime.now(UTC) > RENEW_BEFORE
        and _san_covers(leaf, sans)
    )


def _ensure_generated(tls_dir: Path, sans: list[_Name]) -> ServerTls:
    ca_cert = _load_or_create_ca(tls_dir)
    cert_path, key_path = tls_dir / "server.pem", tls_dir / "server.key"
    if _server_cert_usable(tls_dir, ca_cert, sans):
        _tighten(key_path, 0o600)
    else:
        ca_key = _load_key(tls_dir / "ca.key")
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{tls_dir / 'ca.key'}: expected an EC private key")
        leaf, key = _new_server_cert(ca_cert, ca_key, sans)
        _write_atomic(key_path, _key_pem(key), 0o600)
        _write_atomic(cert_path, _cert_pem(leaf) + _cert_pem(ca_cert), 0o644)
    return ServerTls(
        cert_file=cert_path,
        key_file=key_path,
        ca_file=tls_dir / "ca.pem",
        ca_fingerprint=_fingerprint(ca_cert),
    )


def _ensure_byo(tls_dir: Path, cert_file: Path, key_file: Path) -> ServerTls:
    chain = _load_certs(cert_file.read_bytes(), str(cert_file))
    if not _key_matches(chain[0], _load_key(key_file)):
        raise ValueError(
            f"private key {key_file} does not match the first (leaf) certificate in {cert_file}"
        )
    anchor = chain[-1]
    ca_file = tls_dir / "ca-bundle.pem"
    data = _cert_pem(anchor)
    if not (ca_file.is_file() and ca_file.read_bytes() == data):
        _write_atomic(ca_file, data, 0o644)
    return ServerTls(
        cert_file=cert_file,
        key_file=key_file,
        ca_file=ca_file,
        ca_fingerprint=_fingerprint(anchor),
    )


def ensure_server_tls(
    tls_dir: Path,
    names: Sequence[str],
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ServerTls:
    """Create or reuse the server's TLS material in ``tls_dir``.

    Without ``cert_file``/``key_file`` a cloud CA and a server certificate for ``names`` are
    generated (and reused on later calls while still valid for ``names``). With both, the given
    chain is used and its last certificate is published as the CA (``ca-bundle.pem``).
    """
    tls_dir = Path(tls_dir)
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file must be given together")
    _ensure_dir(tls_dir)
    if cert_file is not None and key_file is not None:
        return _ensure_byo(tls_dir, Path(cert_file), Path(key_file))
    return _ensure_generated(tls_dir, _parse_names(names))


# --------------------------------------------------------------------------- contexts, pins


def server_ssl_context(tls: ServerTls) -> ssl.SSLContext:
    """Server-side context serving ``tls.cert_file``/``tls.key_file``, TLS 1.2 or newer."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


def client_ssl_context(ca_pem: bytes) -> ssl.SSLContext:
    """Client context trusting only the certificates in ``ca_pem``; verifies the host name.

    The given certificates are trust anchors even if they are not self-signed roots.
    """
    certs = _load_certs(ca_pem, "CA PEM")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.load_verify_locations(cadata="".join(_cert_pem(c).decode("ascii") for c in certs))
    return ctx


def _fingerprint(cert: x509.Certificate) -> str:
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def fingerprint_of_pem(pem: bytes) -> str:
    """``sha256:<hex>`` of the DER encoding of the first certificate in ``pem``."""
    return _fingerprint(_load_certs(pem, "PEM")[0])


def parse_pin(text: str) -> str:
    """Normalize a CA pin such as ``SHA256:AB:CD:...`` to ``sha256:<64 lowercase hex>``."""
    value = text.strip().lower()
    prefix, sep, digest = value.partition(":")
    if not sep or prefix != "sha256":
        raise ValueError(f"CA pin {text!r} must start with 'sha256:'")
    if not _PIN_HEX.fullmatch(digest):
        raise ValueError(
            f"CA pin {text!r} must be 'sha256:' followed by 64 hex digits "
            "(32 bytes, optionally separated by ':')"
        )
    return "sha256:" + digest.replace(":", "")


# --------------------------------------------------------------------------- fetching the CA


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _get_ca_unverified(url: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=_unverified_context(), allow_redirects=False) as resp,
    ):
        if resp.status != 200:
            raise ValueError(f"GET {url} answered HTTP {resp.status} {resp.reason or ''}".strip())
        body = await resp.content.read(MAX_CA_PEM + 1)
        while len(body) <= MAX_CA_PEM:
            chunk = await resp.content.read(MAX_CA_PEM + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) > MAX_CA_PEM:
            raise ValueError(f"GET {url}: CA certificate larger than {MAX_CA_PEM} bytes")
        return body


async def _check_verified_handshake(host: str, port: int, ca_pem: bytes) -> None:
    try:
        _reader, writer = await asyncio.open_connection(
            host, port, ssl=client_ssl_context(ca_pem), server_hostname=host
        )
    except ssl.SSLError as exc:
        raise PinMismatch(
            f"controller's certificate is not signed by the pinned CA: {exc}"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


async def fetch_pinned_ca(base_url: str, pin: str, timeout: float = 10.0) -> bytes:
    """Fetch ``<base_url>/agent/ca.pem`` and return it if it matches ``pin``.

    The first connection is unverified (the fingerprint check is what makes the answer
    trustworthy); a second, verified connection then proves the server's certificate was
    issued by that CA. ``timeout`` bounds the whole exchange. Returns the CA certificate PEM.
    """
    want = parse_pin(pin)
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"controller URL {base_url!r} must be https://host[:port][/prefix]")
    host, port = parts.hostname, parts.port or 443
    url = urlunsplit(("https", parts.netloc, parts.path.rstrip("/") + CA_PATH, "", ""))
    async with asyncio.timeout(timeout):
        body = await _get_ca_unverified(url)
        certs = _load_certs(body, f"GET {url}")
        if len(certs) != 1:
            raise PinMismatch(
                f"controller sent {len(certs)} certificates at {url}; expected exactly one CA"
            )
        got = _fingerprint(certs[0])
        if got != want:
            raise PinMismatch(f"controller CA fingerprint {got} does not match the pinned {want}")
        ca_pem = _cert_pem(certs[0])
        await _check_verified_handshake(host, port, ca_pem)
    return ca_pem
