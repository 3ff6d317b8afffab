"""Peer for Tenet's issuance benchmark: pyca/cryptography verifies a PKCS#10 CSR and signs an
X.509-SVID with the same profile (P-256 intermediate, one URI SAN, CA:false, digitalSignature,
serverAuth+clientAuth, random serial, AKI/SKI), one thread, for a fixed time."""
import datetime
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

budget = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
now = datetime.datetime.now(datetime.timezone.utc)

ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenet"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "example.org intermediate ca")])
ca_cert = (x509.CertificateBuilder()
           .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
           .sign(ca_key, hashes.SHA256()))
aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

csrs = []
for i in range(512):
    key = ec.generate_private_key(ec.SECP256R1())
    uri = f"spiffe://example.org/ns/bench/sa/w{i}"
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    csrs.append((csr.public_bytes(serialization.Encoding.DER), uri))

org = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenet")])
issued = 0
start = time.perf_counter()
while time.perf_counter() - start < budget:
    for der, uri in csrs:
        csr = x509.load_der_x509_csr(der)
        if not csr.is_signature_valid:
            raise SystemExit("bad csr")
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if san.get_values_for_type(x509.UniformResourceIdentifier) != [uri]:
            raise SystemExit("unexpected uri")
        cert = (x509.CertificateBuilder()
                .subject_name(org).issuer_name(ca_name).public_key(csr.public_key())
                .serial_number(int.from_bytes(os.urandom(16), "big") >> 2)
                .not_valid_before(now - datetime.timedelta(seconds=30))
                .not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(aki, critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        issued += 1
elapsed = time.perf_counter() - start
print(f"pyca/cryptography (verify CSR + sign SVID): {issued / elapsed:.0f}/s on one thread "
      f"({issued} issued)")
