"""A self-signed CA and a server certificate (the lab API server's, the controller's), kept
in the server's data dir so a restarted server keeps serving what its clients trust."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def ensure_certs(
    data_dir: Path, host: str, *, name: str = "fyke-lab-apiserver"
) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key) in data_dir, made once; the server certificate
    names 127.0.0.1, localhost and `host`, and is remade when `host` is new."""
    ca_crt, ca_key = data_dir / "ca.crt", data_dir / "ca.key"
    srv_crt, srv_key = data_dir / "server.crt", data_dir / "server.key"
    now = dt.datetime.now(dt.UTC)
    if not ca_crt.exists() or not ca_key.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name}-ca"))
            .issuer_name(_name(f"{name}-ca"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(key, ca_key)
        ca_crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        srv_crt.unlink(missing_ok=True)
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_unspecified and str(ip) != "127.0.0.1":
            sans.append(x509.IPAddress(ip))
    except ValueError:
        if host and host != "localhost":
            sans.append(x509.DNSName(host))
    if srv_crt.exists() and srv_key.exists():
        existing = x509.load_pem_x509_certificate(srv_crt.read_bytes())
        have = existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if all(s in have for s in sans):
            return ca_crt, srv_crt, srv_key
    ca_private = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(ca_private, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_private, hashes.SHA256())
    )
    _write_key(key, srv_key)
    srv_crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_crt, srv_crt, srv_key
