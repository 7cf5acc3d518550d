"""The county's certificate authority (``fengqiao pki``): one CA per county issues every node a
certificate whose common name is its division code, for mTLS on gRPC and leaf connections.

Files in one directory: ``ca.crt``/``ca.key`` (the key stays with the county), and per node
``<code>.crt``/``<code>.key`` — the layout ``fengqiao topology render --tls-dir`` expects.
Keys are written owner-only (0600).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fengqiao.divisions import Tier, tier_of
from fengqiao.errors import AlreadyExists, InvalidArgument, NotFound

ORGANIZATION = "Fengqiao"
CA_YEARS = 10
NODE_DAYS = 825


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Where a node's certificate, key and the county CA certificate are."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def of(cls, directory: Path, code: str) -> TlsFiles:
        files = cls(directory / "ca.crt", directory / f"{code}.crt", directory / f"{code}.key")
        missing = [p for p in (files.ca, files.cert, files.key) if not p.exists()]
        if missing:
            raise NotFound(f"缺少证书文件：{'、'.join(map(str, missing))}（用 fengqiao pki issue 签发）")
        return files

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA certificate, node certificate, node key) as PEM bytes."""
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def init_ca(directory: Path, *, county: str, name: str, now: dt.datetime) -> Path:
    """Create the county CA in ``directory``; refuses to overwrite an existing one."""
    if tier_of(county, field="county") is not Tier.COUNTY:
        raise InvalidArgument("county", f"{county} 不是县级行政区划代码")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.key").exists():
        raise AlreadyExists(f"{directory} 中已有县级 CA，不覆盖")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {county} CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    _write_cert(directory / "ca.crt", cert)
    return directory / "ca.crt"


def issue(directory: Path, *, code: str, hosts: list[str], now: dt.datetime) -> TlsFiles:
    """Issue node ``code`` a certificate (CN = its division code) for ``hosts`` (IPs or names)."""
    tier_of(code, field="code")
    try:
        ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    except FileNotFoundError as exc:
        raise NotFound(f"{directory} 中没有县级 CA（先运行 fengqiao pki init）") from exc
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    county = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    if isinstance(county, str) and code[:6] not in county:
        raise InvalidArgument("code", f"{code} 不属于该 CA 所在的县（{county}）")
    names: list[x509.GeneralName] = []
    for host in hosts or ["127.0.0.1", "localhost"]:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, code),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=NODE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.crt", directory / f"{code}.crt", directory / f"{code}.key")
    _write_key(files.key, key)
    _write_cert(files.cert, cert)
    return files


def division_code_of(pem: bytes) -> str:
    """The division code a node certificate names (its common name)."""
    cert = x509.load_pem_x509_certificate(pem)
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    code = value if isinstance(value, str) else value.decode()
    tier_of(code, field="certificate")
    return code
