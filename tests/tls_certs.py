"""Generate the TLS certificates that the tests use, at run time.

Fresh keys are made for every test session, so no private key is kept in
the repository and no certificate expires in it. All keys are ECDSA P-256,
which is quick to generate.

Kinds of leaf certificate, each with its key:

- ``valid``: for ``localhost``, ``127.0.0.1`` and ``::1``, signed by the
  test CA.
- ``expired``: like ``valid``, but its validity ended 30 days ago.
- ``wrong-host``: signed by the test CA for ``wrong-host.invalid`` only.
- ``self-signed``: for the loopback names, signed by its own key.
- ``untrusted``: for the loopback names, signed by a second CA that no
  test trusts by default.
- ``client``: a TLS client certificate signed by the test CA.

Kind names accept ``_`` in place of ``-`` (``wrong_host``).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import shutil
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "KINDS",
    "LOOPBACK_NAMES",
    "CertificateSet",
    "generate",
    "subject_hash",
]

KINDS = (
    "valid",
    "expired",
    "wrong-host",
    "self-signed",
    "untrusted",
    "client",
)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WRONG_HOST_NAME = "wrong-host.invalid"

_DAY = datetime.timedelta(days=1)


@dataclass
class CertificateSet:
    """PEM files of one generated set, with helpers to use them."""

    directory: Path
    ca: Path
    untrusted_ca: Path
    ca_dir: Path
    _pairs: dict[str, tuple[Path, Path]] = field(repr=False)
    _fingerprints: dict[str, str] = field(repr=False)

    def pair(self, kind: str) -> tuple[Path, Path]:
        """Return ``(certfile, keyfile)`` of the leaf of this kind."""
        return self._pairs[_normalise_kind(kind)]

    def fingerprint(self, kind: str) -> str:
        """Return the SHA-256 of the leaf's DER form as ``AB:CD:...``."""
        return self._fingerprints[_normalise_kind(kind)]

    def server_context(self, kind: str = "valid") -> ssl.SSLContext:
        """Build a server-side context that presents the leaf of ``kind``."""
        certfile, keyfile = self.pair(kind)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Build a verifying client context that trusts the test CA only."""
        return ssl.create_default_context(cafile=str(self.ca))


def _normalise_kind(kind: str) -> str:
    name = kind.replace("_", "-")
    if name not in KINDS:
        raise ValueError(
            f"unknown certificate kind {kind!r}; expected one of {KINDS}"
        )
    return name


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "yt tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


@dataclass
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _make_ca(
    common_name: str, now: datetime.datetime
) -> tuple[x509.Certificate, _Issuer]:
    key = _new_key()
    name = _name(common_name)
    public_key = key.public_key()
    # ssl.create_default_context() of Python 3.13 sets VERIFY_X509_STRICT,
    # which requires a critical basicConstraints, a keyUsage and a
    # subjectKeyIdentifier on a CA, and an authorityKeyIdentifier on leaves.
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 90 * _DAY)
        .not_valid_after(now + 365 * _DAY)
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate, _Issuer(name, key)


def _make_leaf(
    common_name: str,
    names: tuple[str, ...],
    issuer: _Issuer | None,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Build a leaf certificate, self-signed when ``issuer`` is None."""
    key = _new_key()
    public_key = key.public_key()
    subject = _name(common_name)
    if issuer is None:
        issuer = _Issuer(subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.key.public_key()
            ),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            _subject_alt_names(names), critical=False
        )
    return builder.sign(issuer.key, hashes.SHA256()), key


def _write_certificate(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return path


def _format_fingerprint(certificate: x509.Certificate) -> str:
    digest = certificate.fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in digest)


def subject_hash(certificate: x509.Certificate) -> str:
    """Compute OpenSSL's subject name hash (``openssl x509 -hash``).

    OpenSSL hashes a canonical form of the name. Each value becomes a
    UTF8String, trimmed, with inner runs of spaces collapsed and ASCII
    letters lowercased. The first 4 bytes of the SHA-1 of the RDN sets,
    without the outer SEQUENCE header, are read as a little-endian number.
    """
    # NOTE: exact only for names whose values are ASCII and whose default
    # ASN.1 type in cryptography is UTF8String, as the names built here are.
    canonical = x509.Name(
        [
            x509.NameAttribute(
                attribute.oid,
                " ".join(str(attribute.value).split()).lower(),
            )
            for attribute in certificate.subject
        ]
    )
    der = canonical.public_bytes()
    length_byte = der[1]
    header_length = 2 if length_byte < 0x80 else 2 + (length_byte & 0x7F)
    digest = hashlib.sha1(der[header_length:]).digest()  # noqa: S324
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def _write_ca_dir(directory: Path, ca_path: Path, ca: x509.Certificate):
    """Lay out ``directory`` as OpenSSL's ``-CApath`` expects it."""
    directory.mkdir()
    shutil.copyfile(ca_path, directory / f"{subject_hash(ca)}.0")


def generate(directory: Path) -> CertificateSet:
    """Generate every kind of certificate into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    ca_certificate, ca = _make_ca("yt test CA", now)
    untrusted_certificate, untrusted = _make_ca("yt untrusted CA", now)
    ca_path = _write_certificate(directory / "ca.pem", ca_certificate)
    untrusted_path = _write_certificate(
        directory / "untrusted-ca.pem", untrusted_certificate
    )
    ca_dir = directory / "ca-dir"
    _write_ca_dir(ca_dir, ca_path, ca_certificate)

    current = (now - _DAY, now + 30 * _DAY)
    leaves = {
        "valid": _make_leaf("localhost", LOOPBACK_NAMES, ca, *current),
        "expired": _make_leaf(
            "localhost", LOOPBACK_NAMES, ca, now - 60 * _DAY, now - 30 * _DAY
        ),
        "wrong-host": _make_leaf(
            WRONG_HOST_NAME, (WRONG_HOST_NAME,), ca, *current
        ),
        "self-signed": _make_leaf("localhost", LOOPBACK_NAMES, None, *current),
        "untrusted": _make_leaf(
            "localhost", LOOPBACK_NAMES, untrusted, *current
        ),
        "client": _make_leaf(
            "yt test client",
            (),
            ca,
            *current,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        ),
    }

    pairs = {}
    fingerprints = {}
    for kind, (certificate, key) in leaves.items():
        certfile = _write_certificate(directory / f"{kind}.pem", certificate)
        keyfile = _write_key(directory / f"{kind}.key", key)
        pairs[kind] = (certfile, keyfile)
        fingerprints[kind] = _format_fingerprint(certificate)

    return CertificateSet(
        directory=directory,
        ca=ca_path,
        untrusted_ca=untrusted_path,
        ca_dir=ca_dir,
        _pairs=pairs,
        _fingerprints=fingerprints,
    )
