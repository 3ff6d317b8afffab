//! Integration tests of tenet-device, one module per topic, with a real CA from
//! tenet-identity and real ECDSA keys generated at test time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod collect;
mod enrol;
mod mdm;
mod mdm_ambiguous;
mod report;
mod requirements;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tenet_device::{DEFAULT_DEVICE_CERT_TTL, DeviceKey, DeviceRegistry, EnrolmentRequest};
use tenet_identity::{CertificateAuthority, TrustDomain, X509Svid};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// The fixed "now" of every test.
pub fn now() -> OffsetDateTime {
    datetime!(2026-06-01 12:00 UTC)
}

/// A CA generated, saved into a temp dir and loaded back, with an empty registry.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ca: CertificateAuthority,
    pub registry: DeviceRegistry,
}

impl Fixture {
    pub fn create() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let td = TrustDomain::parse("corp.example.test").unwrap();
        let ca_dir = dir.path().join("ca");
        std::fs::create_dir(&ca_dir).unwrap();
        CertificateAuthority::generate(&td, now() - time::Duration::days(1))
            .unwrap()
            .save(&ca_dir)
            .unwrap();
        let ca = CertificateAuthority::load(&ca_dir).unwrap();
        Self {
            dir,
            ca,
            registry: DeviceRegistry::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Enrols a device the way `tenet device enroll` does: key generated and saved on the
    /// device, a CSR, a token redeemed. Returns the device id and its SVID.
    pub fn enrol(&mut self, name: &str, serial: &str) -> (Uuid, X509Svid) {
        let key_path = self.path(&format!("{name}.key"));
        DeviceKey::generate().unwrap().save(&key_path).unwrap();
        let key = DeviceKey::load(&key_path).unwrap();
        let token = self
            .registry
            .create_token(Some("alice@example.test"), Duration::from_secs(600), now())
            .unwrap();
        let request = EnrolmentRequest {
            token: token.token,
            csr: key.csr_pem().unwrap(),
            name: Some(name.into()),
            hardware_serial: Some(serial.into()),
        };
        let enrolment = self
            .registry
            .enrol(&self.ca, &request, DEFAULT_DEVICE_CERT_TTL, now())
            .unwrap();
        let svid = key.into_svid(enrolment.chain).unwrap();
        (enrolment.device_id, svid)
    }
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
