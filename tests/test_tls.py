"""Tests for mininova.tls: generated CA/server certs, pins, pinned CA fetch, BYO certificates."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import ssl
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mininova.tls import (
    PinMismatch,
    ServerTls,
    client_ssl_context,
    ensure_server_tls,
    fetch_pinned_ca,
    fingerprint_of_pem,
    parse_pin,
    server_ssl_context,
)

NAMES = ["mininova.test", "10.0.0.5", "::1", "127.0.0.1"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def certs_in(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def sans_of(cert: x509.Certificate) -> tuple[set[str], set[object]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.asynccontextmanager
async def https_server(tls: ServerTls, body: bytes, prefix: str = "") -> AsyncIterator[str]:
    """Serve ``body`` at ``<prefix>/agent/ca.pem`` over TLS on a random loopback port."""

    async def ca_pem(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/x-pem-file")

    app = web.Application()
    app.router.add_get(prefix + "/agent/ca.pem", ca_pem)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(tls))
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def handshake(base_url: str, ca_pem: bytes, server_hostname: str = "127.0.0.1") -> None:
    port = int(base_url.rsplit(":", 1)[1])
    _r, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_ssl_context(ca_pem), server_hostname=server_hostname
    )
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def make_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    *,
    ca: bool = False,
    ips: tuple[str, ...] = (),
    days: int = 30,
) -> x509.Certificate:
    """A minimal test certificate (self-signed unless an issuer is given)."""
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ips:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
            critical=False,
        )
    if issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


# --------------------------------------------------------------------------- generated


def test_generated_files_modes_and_contents(tmp_path: Path) -> None:
    tls_dir = tmp_path / "state" / "tls"
    with umask(0):  # modes must not depend on a restrictive umask
        tls = ensure_server_tls(tls_dir, NAMES)

    assert tls == ServerTls(
        cert_file=tls_dir / "server.pem",
        key_file=tls_dir / "server.key",
        ca_file=tls_dir / "ca.pem",
        ca_fingerprint=tls.ca_fingerprint,
    )
    assert sorted(p.name for p in tls_dir.iterdir()) == [
        "ca.key",
        "ca.pem",
        "server.key",
        "server.pem",
    ]
    assert mode(tls_dir) == 0o700
    assert mode(tls_dir / "ca.key") == 0o600
    assert mode(tls_dir / "server.key") == 0o600
    assert mode(tls_dir / "ca.pem") == 0o644
    assert mode(tls_dir / "server.pem") == 0o644

    (ca,) = certs_in(tls.ca_file)
    digest = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert tls.ca_fingerprint == f"sha256:{digest}"
    assert fingerprint_of_pem(tls.ca_file.read_bytes()) == tls.ca_fingerprint

    # CA properties
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn.startswith("mininova cloud CA ") and len(cn) > len("mininova cloud CA ")
    life = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3640) < life < timedelta(days=3660)

    # server chain: leaf first, then the CA
    leaf, second = certs_in(tls.cert_file)
    assert second == ca
    assert leaf.issuer == ca.subject
    assert leaf.public_key().curve.name == "secp256r1"
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mininova.test"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    dns, ips = sans_of(leaf)
    assert dns == {"mininova.test"}
    assert ips == {ipaddress.ip_address(a) for a in ("10.0.0.5", "::1", "127.0.0.1")}
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=824) < life < timedelta(days=826)

    key = serialization.load_pem_private_key(tls.key_file.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()

    # the chain verifies against the CA for each name (cryptography's strict RFC 5280 verifier)
    store = verification.Store([ca])
    subjects: list[x509.DNSName | x509.IPAddress] = [x509.DNSName("mininova.test")]
    subjects += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("10.0.0.5", "::1")]
    for subject in subjects:
        verifier = verification.PolicyBuilder().store(store).build_server_verifier(subject)
        chain = verifier.verify(leaf, [])
        assert chain[-1] == ca
    other = verification.PolicyBuilder().store(store)
    with pytest.raises(verification.VerificationError):
        other.build_server_verifier(x509.DNSName("other.test")).verify(leaf, [])


def test_existing_dir_is_tightened(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir(mode=0o755)
    os.chmod(tls_dir, 0o755)
    ensure_server_tls(tls_dir, ["localhost"])
    assert mode(tls_dir) == 0o700


def test_names_are_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ensure_server_tls(tmp_path / "tls", [])
    with pytest.raises(ValueError, match="empty host name"):
        ensure_server_tls(tmp_path / "tls", ["ok.test", " "])


def test_reuse_and_reissue(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    first = ensure_server_tls(tls_dir, ["ctl.test", "127.0.0.1"])
    ca_bytes = first.ca_file.read_bytes()
    server_bytes = first.cert_file.read_bytes()
    key_bytes = first.key_file.read_bytes()

    # same names (and a subset, differently spelled) -> everything reused
    assert ensure_server_tls(tls_dir, ["ctl.test", "127.0.0.1"]) == first
    assert ensure_server_tls(tls_dir, ["CTL.test."]) == first
    assert first.cert_file.read_bytes() == server_bytes
    assert first.key_file.read_bytes() == key_bytes

    # a new name -> new server certificate, same CA
    second = ensure_server_tls(tls_dir, ["ctl.test", "127.0.0.1", "10.1.2.3"])
    assert second.ca_fingerprint == first.ca_fingerprint
    assert second.ca_file.read_bytes() == ca_bytes
    assert second.cert_file.read_bytes() != server_bytes
    assert second.key_file.read_bytes() != key_bytes
    leaf = certs_in(second.cert_file)[0]
    assert ipaddress.ip_address("10.1.2.3") in sans_of(leaf)[1]
    assert mode(second.key_file) == 0o600
    assert sorted(p.name for p in tls_dir.iterdir()) == [
        "ca.key",
        "ca.pem",
        "server.key",
        "server.pem",
    ]


def test_reissue_near_expiry(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    tls = ensure_server_tls(tls_dir, ["127.0.0.1"])
    ca = certs_in(tls.ca_file)[0]
    ca_key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    short = make_cert("127.0.0.1", key, ca, ca_key, ips=("127.0.0.1",), days=10)
    tls.cert_file.write_bytes(_pem(short) + _pem(ca))
    tls.key_file.write_bytes(_key_pem(key))

    again = ensure_server_tls(tls_dir, ["127.0.0.1"])
    assert again.ca_fingerprint == tls.ca_fingerprint
    leaf = certs_in(again.cert_file)[0]
    assert leaf.serial_number != short.serial_number
    assert leaf.not_valid_after_utc - datetime.now(UTC) > timedelta(days=800)


def test_missing_ca_key_is_an_error(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    ensure_server_tls(tls_dir, ["localhost"])
    (tls_dir / "ca.key").unlink()
    with pytest.raises(ValueError, match="ca.key is missing"):
        ensure_server_tls(tls_dir, ["localhost", "other.test"])


# --------------------------------------------------------------------------- pins


HEX = "ab" * 32


@pytest.mark.parametrize(
    "text",
    [
        f"sha256:{HEX}",
        f"SHA256:{HEX.upper()}",
        f"  sha256:{HEX}\n",
        "sha256:" + ":".join(["AB"] * 32),
        "Sha256:" + "ab:ab" * 16,
    ],
)
def test_parse_pin_normalizes(text: str) -> None:
    assert parse_pin(text) == f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEX, "must start with 'sha256:'"),
        (f"sha1:{HEX}", "must start with 'sha256:'"),
        ("sha256:", "64 hex digits"),
        (f"sha256:{HEX[:-2]}", "64 hex digits"),
        (f"sha256:{HEX}ab", "64 hex digits"),
        ("sha256:" + "zz" * 32, "64 hex digits"),
        ("sha256:a:" + "b" * 63, "64 hex digits"),
        (f"sha256::{HEX}", "64 hex digits"),
        (f"sha256:{HEX}:", "64 hex digits"),
    ],
)
def test_parse_pin_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pin(text)


def test_fingerprint_of_pem_errors() -> None:
    with pytest.raises(ValueError):
        fingerprint_of_pem(b"not a certificate")


# --------------------------------------------------------------------------- over the network


@pytest.fixture
def cloud(tmp_path: Path) -> ServerTls:
    return ensure_server_tls(tmp_path / "tls", ["localhost", "127.0.0.1"])


@pytest.fixture
def other_cloud(tmp_path: Path) -> ServerTls:
    return ensure_server_tls(tmp_path / "other-tls", ["localhost", "127.0.0.1"])


async def test_fetch_pinned_ca_ok(cloud: ServerTls) -> None:
    ca_pem = cloud.ca_file.read_bytes()
    async with https_server(cloud, ca_pem) as url:
        assert await fetch_pinned_ca(url, cloud.ca_fingerprint) == ca_pem
        colon_pin = "SHA256:" + ":".join(
            cloud.ca_fingerprint[7:][i : i + 2].upper() for i in range(0, 64, 2)
        )
        assert await fetch_pinned_ca(url + "/", colon_pin, timeout=5) == ca_pem


async def test_fetch_pinned_ca_with_path_prefix(cloud: ServerTls) -> None:
    ca_pem = cloud.ca_file.read_bytes()
    async with https_server(cloud, ca_pem, prefix="/nova") as url:
        assert await fetch_pinned_ca(url + "/nova", cloud.ca_fingerprint) == ca_pem
        with pytest.raises(ValueError, match="HTTP 404"):
            await fetch_pinned_ca(url, cloud.ca_fingerprint)


async def test_fetch_pinned_ca_wrong_pin(cloud: ServerTls, other_cloud: ServerTls) -> None:
    async with https_server(cloud, cloud.ca_file.read_bytes()) as url:
        with pytest.raises(PinMismatch) as info:
            await fetch_pinned_ca(url, other_cloud.ca_fingerprint)
    message = str(info.value)
    assert message == (
        f"controller CA fingerprint {cloud.ca_fingerprint} does not match "
        f"the pinned {other_cloud.ca_fingerprint}"
    )
    assert isinstance(info.value, ValueError)


async def test_fetch_pinned_ca_server_cert_from_other_ca(
    cloud: ServerTls, other_cloud: ServerTls
) -> None:
    # serves the pinned CA's PEM, but its own certificate comes from a different CA
    async with https_server(other_cloud, cloud.ca_file.read_bytes()) as url:
        with pytest.raises(PinMismatch, match="not signed by the pinned CA"):
            await fetch_pinned_ca(url, cloud.ca_fingerprint)


async def test_fetch_pinned_ca_rejects_extra_certificates(
    cloud: ServerTls, other_cloud: ServerTls
) -> None:
    # the pinned CA first, followed by one the attacker controls: must not be trusted
    body = cloud.ca_file.read_bytes() + other_cloud.ca_file.read_bytes()
    async with https_server(other_cloud, body) as url:
        with pytest.raises(PinMismatch, match="expected exactly one"):
            await fetch_pinned_ca(url, cloud.ca_fingerprint)


async def test_fetch_pinned_ca_rejects_http_and_bad_pin(cloud: ServerTls) -> None:
    with pytest.raises(ValueError, match="must be https"):
        await fetch_pinned_ca("http://127.0.0.1:1", cloud.ca_fingerprint)
    with pytest.raises(ValueError, match="sha256"):
        await fetch_pinned_ca("https://127.0.0.1:1", "nope")


async def test_client_ssl_context_handshake(cloud: ServerTls, other_cloud: ServerTls) -> None:
    async with https_server(cloud, b"") as url:
        await handshake(url, cloud.ca_file.read_bytes())
        await handshake(url, cloud.ca_file.read_bytes(), server_hostname="localhost")
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(url, other_cloud.ca_file.read_bytes())
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(url, cloud.ca_file.read_bytes(), server_hostname="elsewhere.test")


def test_context_settings(cloud: ServerTls) -> None:
    server = server_ssl_context(cloud)
    assert server.minimum_version >= ssl.TLSVersion.TLSv1_2
    client = client_ssl_context(cloud.ca_file.read_bytes())
    assert client.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert len(client.get_ca_certs()) == 1
    with pytest.raises(ValueError):
        client_ssl_context(b"garbage")


# --------------------------------------------------------------------------- bring your own


@pytest.fixture
def byo(tmp_path: Path) -> dict[str, object]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_cert("Test Corp Root", ca_key, ca=True, days=365)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_cert("ctl.corp", leaf_key, ca, ca_key, ips=("127.0.0.1",))
    d = tmp_path / "byo"
    d.mkdir()
    (d / "chain.pem").write_bytes(_pem(leaf) + _pem(ca))
    (d / "leaf.pem").write_bytes(_pem(leaf))
    (d / "leaf.key").write_bytes(_key_pem(leaf_key))
    (d / "other.key").write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
    return {"dir": d, "ca": ca, "leaf": leaf}


def test_byo_chain(tmp_path: Path, byo: dict[str, object]) -> None:
    d, ca = byo["dir"], byo["ca"]
    assert isinstance(d, Path) and isinstance(ca, x509.Certificate)
    tls_dir = tmp_path / "tls"
    tls = ensure_server_tls(tls_dir, ["ignored.test"], d / "chain.pem", d / "leaf.key")
    assert tls.cert_file == d / "chain.pem"
    assert tls.key_file == d / "leaf.key"
    assert tls.ca_file == tls_dir / "ca-bundle.pem"
    assert certs_in(tls.ca_file) == [ca]
    digest = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert tls.ca_fingerprint == f"sha256:{digest}"
    assert mode(tls_dir) == 0o700
    assert sorted(p.name for p in tls_dir.iterdir()) == ["ca-bundle.pem"]
    # idempotent
    assert ensure_server_tls(tls_dir, [], d / "chain.pem", d / "leaf.key") == tls


def test_byo_single_certificate(tmp_path: Path, byo: dict[str, object]) -> None:
    d, leaf = byo["dir"], byo["leaf"]
    assert isinstance(d, Path) and isinstance(leaf, x509.Certificate)
    tls = ensure_server_tls(tmp_path / "tls", [], d / "leaf.pem", d / "leaf.key")
    assert certs_in(tls.ca_file) == [leaf]
    assert tls.ca_fingerprint == fingerprint_of_pem(_pem(leaf))


def test_byo_mismatched_key(tmp_path: Path, byo: dict[str, object]) -> None:
    d = byo["dir"]
    assert isinstance(d, Path)
    with pytest.raises(ValueError, match="does not match the first .leaf. certificate"):
        ensure_server_tls(tmp_path / "tls", [], d / "chain.pem", d / "other.key")
    with pytest.raises(ValueError, match="together"):
        ensure_server_tls(tmp_path / "tls", [], cert_file=d / "chain.pem")


async def test_byo_served_and_pinned(tmp_path: Path, byo: dict[str, object]) -> None:
    d = byo["dir"]
    assert isinstance(d, Path)
    tls = ensure_server_tls(tmp_path / "tls", [], d / "chain.pem", d / "leaf.key")
    ca_pem = tls.ca_file.read_bytes()
    async with https_server(tls, ca_pem) as url:
        assert await fetch_pinned_ca(url, tls.ca_fingerprint) == ca_pem


async def test_byo_intermediate_is_the_pinned_anchor(tmp_path: Path) -> None:
    """A chain without its root: the last (intermediate) certificate is what agents pin."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("Test Root", root_key, ca=True, days=365)
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = make_cert("Test Intermediate", mid_key, root, root_key, ca=True, days=365)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_cert("ctl.corp", leaf_key, mid, mid_key, ips=("127.0.0.1",))
    (tmp_path / "chain.pem").write_bytes(_pem(leaf) + _pem(mid))
    (tmp_path / "leaf.key").write_bytes(_key_pem(leaf_key))

    tls = ensure_server_tls(tmp_path / "tls", [], tmp_path / "chain.pem", tmp_path / "leaf.key")
    assert certs_in(tls.ca_file) == [mid]
    ca_pem = tls.ca_file.read_bytes()
    async with https_server(tls, ca_pem) as url:
        assert await fetch_pinned_ca(url, tls.ca_fingerprint) == ca_pem
