//! C2SP signed notes with Ed25519: signing keys and their files, verifier keys, and the
//! note text format (<https://c2sp.org/signed-note>).
//!
//! A note is a UTF-8 body ending in a newline, a blank line, and signature lines
//! `— <key name> <base64(key hash || signature)>`. For Ed25519 the key hash is the first four
//! bytes of SHA-256(key name || 0x0A || 0x01 || public key), and a verifier key is written
//! `<name>+<key hash hex>+<base64(0x01 || public key)>`.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::hash::sha256;

/// Signature type byte of Ed25519 in C2SP signed notes.
const ALG_ED25519: u8 = 0x01;
/// Every signature line starts with an em dash and a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";
const PUBLIC_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;
const MAX_SIGNATURES: usize = 100;
const PEM_LABEL: &str = "PRIVATE KEY";

/// A note, key name or verifier key that does not follow C2SP signed-note, or a signature
/// that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note text breaks the format.
    #[error("signed note is malformed: {0}")]
    Malformed(&'static str),
    /// A key name is empty or holds whitespace or '+'.
    #[error("key name {0:?} is not allowed: it must be non-empty, without spaces or '+'")]
    KeyName(String),
    /// A verifier key string is malformed.
    #[error("verifier key {key:?} is malformed: {reason}")]
    VerifierKey {
        /// The text given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The note carries no signature by the verifier's key.
    #[error("note has no signature by key {0:?}")]
    NotSignedBy(String),
    /// A signature by the verifier's key does not verify.
    #[error("signature by key {0:?} does not verify")]
    BadSignature(String),
}

/// A key file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("key file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The private key file can be read by others.
    #[error("key file {path:?} has mode {mode:o}; a private key must not be readable by others")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a PEM PKCS#8 Ed25519 key.
    #[error("key file {path:?} is not a PKCS#8 Ed25519 private key in PEM")]
    NotAKey {
        /// The file.
        path: PathBuf,
    },
    /// The key name is not allowed.
    #[error(transparent)]
    Name(#[from] NoteError),
    /// The random source or the crypto library failed.
    #[error("ed25519 key operation failed: {0}")]
    Crypto(&'static str),
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::KeyName(name.to_owned()));
    }
    Ok(())
}

fn key_hash(name: &str, public: &[u8]) -> [u8; 4] {
    let digest = sha256(&[name.as_bytes(), b"\n", &[ALG_ED25519], public]);
    let b = digest.as_bytes();
    [b[0], b[1], b[2], b[3]]
}

/// An Ed25519 signing key with its C2SP key name.
pub struct SigningKey {
    name: String,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key named `name`, from 32 bytes of `rng`.
    pub fn generate(name: &str, rng: &dyn SecureRandom) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        rng.fill(&mut seed)
            .map_err(|_| KeyError::Crypto("the random source failed"))?;
        Self::from_seed(name, &seed)
    }

    /// The key with this 32-byte Ed25519 seed (deterministic; for tests and key derivation).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_key_name(name)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| KeyError::Crypto("seed rejected"))?;
        Ok(Self {
            name: name.to_owned(),
            pair,
        })
    }

    /// The key in a PKCS#8 (v1 or v2) DER document.
    pub fn from_pkcs8(name: &str, der: &[u8]) -> Result<Self, KeyError> {
        check_key_name(name)?;
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| KeyError::Crypto("not a PKCS#8 Ed25519 key"))?;
        Ok(Self {
            name: name.to_owned(),
            pair,
        })
    }

    /// The key as a PKCS#8 v2 DER document.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, KeyError> {
        self.pair
            .to_pkcs8()
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| KeyError::Crypto("encoding PKCS#8 failed"))
    }

    /// Write the key as PEM PKCS#8 to a new file readable by the owner only (mode 0600).
    /// An existing file is never overwritten.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let der = self.to_pkcs8()?;
        let pem = pem_encode(&der);
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Read a key written by [`Self::save`] (or any PEM PKCS#8 Ed25519 key), refusing a file
    /// that group or others can access.
    pub fn load(name: &str, path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        crate::segment::require_regular(path).map_err(io)?;
        let text = std::fs::read_to_string(path).map_err(io)?;
        let not_a_key = || KeyError::NotAKey {
            path: path.to_owned(),
        };
        let der = pem_decode(&text).ok_or_else(not_a_key)?;
        Self::from_pkcs8(name, &der).map_err(|e| match e {
            KeyError::Crypto(_) => not_a_key(),
            other => other,
        })
    }

    /// The key name that appears in signature lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(self.pair.public_key().as_ref());
        VerifierKey {
            hash: key_hash(&self.name, &public),
            name: self.name.clone(),
            public,
        }
    }

    /// Sign `body` (which must end with a newline) as a note with one signature.
    pub(crate) fn sign_note(&self, body: &str) -> Note {
        let verifier = self.verifier_key();
        let signature = self.pair.sign(body.as_bytes()).as_ref().to_vec();
        let mut blob = Vec::with_capacity(4 + SIGNATURE_LEN);
        blob.extend_from_slice(&verifier.hash);
        blob.extend_from_slice(&signature);
        let text = format!(
            "{body}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        );
        Note {
            text,
            body_len: body.len(),
            signatures: vec![NoteSignature {
                name: self.name.clone(),
                key_hash: verifier.hash,
                signature,
            }],
        }
    }
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {PEM_LABEL}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    out
}

fn pem_decode(text: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let inner = text.trim().strip_prefix(&begin)?.strip_suffix(&end)?;
    let b64: String = inner.split_whitespace().collect();
    STANDARD.decode(b64).ok()
}

/// An Ed25519 verifier key in C2SP note form.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: [u8; 4],
    public: [u8; PUBLIC_KEY_LEN],
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(1 + PUBLIC_KEY_LEN);
        key.push(ALG_ED25519);
        key.extend_from_slice(&self.public);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            STANDARD.encode(key)
        )
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::parse(s)
    }
}

impl VerifierKey {
    /// Parse `<name>+<key hash hex>+<base64(0x01 || public key)>`, checking the key hash.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::VerifierKey {
            key: text.to_owned(),
            reason,
        };
        // The name and hash hold no '+'; the base64 key may.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(key_b64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <name>+<hash>+<key>"));
        };
        check_key_name(name)?;
        let mut hash = [0u8; 4];
        if hash_hex.len() != 8 {
            return Err(bad("the key hash is not 8 hex digits"));
        }
        hex::decode_to_slice(hash_hex, &mut hash)
            .map_err(|_| bad("the key hash is not 8 hex digits"))?;
        let key = STANDARD
            .decode(key_b64)
            .map_err(|_| bad("the key is not base64"))?;
        let Some((&ALG_ED25519, public)) = key.split_first() else {
            return Err(bad("the key is not an Ed25519 key (type 0x01)"));
        };
        let public: [u8; PUBLIC_KEY_LEN] = public
            .try_into()
            .map_err(|_| bad("the Ed25519 key is not 32 bytes"))?;
        if key_hash(name, &public) != hash {
            return Err(bad("the key hash does not match the name and key"));
        }
        Ok(Self {
            name: name.to_owned(),
            hash,
            public,
        })
    }

    /// Read a verifier key from a text file (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = crate::segment::require_regular(path)
            .and_then(|()| std::fs::read_to_string(path))
            .map_err(|source| KeyError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self::parse(text.trim())?)
    }

    /// Write the verifier key and a newline to a new file (mode 0644).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .map_err(io)?;
        file.write_all(format!("{self}\n").as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The four-byte key hash.
    pub fn key_hash(&self) -> [u8; 4] {
        self.hash
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// Check that `note` carries a valid signature by this key. Signatures by other keys are
    /// ignored, as C2SP asks; a signature that claims this key and fails is an error.
    pub fn verify(&self, note: &Note) -> Result<(), NoteError> {
        let mut claimed = false;
        for sig in note
            .signatures()
            .iter()
            .filter(|s| s.name == self.name && s.key_hash == self.hash)
        {
            claimed = true;
            let key = UnparsedPublicKey::new(&ED25519, &self.public);
            if key.verify(note.body().as_bytes(), &sig.signature).is_ok() {
                return Ok(());
            }
        }
        if claimed {
            Err(NoteError::BadSignature(self.name.clone()))
        } else {
            Err(NoteError::NotSignedBy(self.name.clone()))
        }
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The first four bytes of the key hash.
    pub key_hash: [u8; 4],
    /// The signature bytes after the key hash.
    pub signature: Vec<u8>,
}

/// A parsed (not yet verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    body_len: usize,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parse the note text: body, blank line, one or more signature lines.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed(
                "control characters other than newline",
            ));
        }
        if !text.ends_with('\n') {
            return Err(NoteError::Malformed("the note does not end with a newline"));
        }
        let split = text
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (body, sigs) = text.split_at(split + 1);
        let sigs = sigs.strip_prefix('\n').unwrap_or(sigs);
        if body.is_empty() || body == "\n" {
            return Err(NoteError::Malformed("the body is empty"));
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            signatures.push(parse_signature_line(line)?);
        }
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signature lines"));
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("more than 100 signatures"));
        }
        Ok(Self {
            text: text.to_owned(),
            body_len: body.len(),
            signatures,
        })
    }

    /// The signed text, including its final newline.
    pub fn body(&self) -> &str {
        self.text.get(..self.body_len).unwrap_or_default()
    }

    /// The whole note.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
        "a signature line does not start with '— '",
    ))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(NoteError::Malformed("a signature line has no signature"))?;
    check_key_name(name).map_err(|_| NoteError::Malformed("a signature has a bad key name"))?;
    let blob = STANDARD
        .decode(b64)
        .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
    let (hash, signature) = blob
        .split_first_chunk::<4>()
        .filter(|(_, sig)| !sig.is_empty())
        .ok_or(NoteError::Malformed(
            "a signature is shorter than its key hash",
        ))?;
    Ok(NoteSignature {
        name: name.to_owned(),
        key_hash: *hash,
        signature: signature.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed("example.test/log", &[7u8; 32]).unwrap()
    }

    #[test]
    fn sign_then_verify_and_tamper_fails() {
        let k = key();
        let signed = k.sign_note("example.test/log\n3\nAAAA\n");
        let text = signed.text().to_owned();
        let note = Note::parse(&text).unwrap();
        assert_eq!(note, signed);
        k.verifier_key().verify(&note).unwrap();

        let forged = text.replacen("\n3\n", "\n4\n", 1);
        let err = k.verifier_key().verify(&Note::parse(&forged).unwrap());
        assert_eq!(err, Err(NoteError::BadSignature("example.test/log".into())));

        let other = SigningKey::from_seed("other", &[8u8; 32]).unwrap();
        assert!(matches!(
            other.verifier_key().verify(&note),
            Err(NoteError::NotSignedBy(_))
        ));
    }

    #[test]
    fn verifier_key_round_trips_and_checks_its_hash() {
        let vk = key().verifier_key();
        let text = vk.to_string();
        assert!(text.starts_with("example.test/log+"));
        assert_eq!(VerifierKey::parse(&text).unwrap(), vk);
        let mut parts: Vec<&str> = text.split('+').collect();
        parts[1] = "00000000";
        assert!(VerifierKey::parse(&parts.join("+")).is_err());
        assert!(VerifierKey::parse("a b+00000000+AQ==").is_err());
    }

    /// Base64 uses '+': a key whose encoding holds one must still parse.
    #[test]
    fn verifier_key_with_a_plus_in_its_base64_parses() {
        let with_plus = (0u8..=255)
            .map(|n| SigningKey::from_seed("example.test/log", &[n; 32]).unwrap())
            .map(|k| k.verifier_key())
            .find(|vk| vk.to_string().matches('+').count() > 2)
            .unwrap();
        assert_eq!(
            VerifierKey::parse(&with_plus.to_string()).unwrap(),
            with_plus
        );
    }

    #[test]
    fn known_key_hash_from_the_c2sp_spec_example() {
        // The golang.org/x/mod/sumdb/note example key `PeterNeumann`.
        let vk = VerifierKey::parse(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .unwrap();
        assert_eq!(vk.key_hash(), [0xc7, 0x4f, 0x20, 0xa3]);
        let note = Note::parse(
            "If you think cryptography is the answer to your problem,\n\
             then you don't know what your problem is.\n\
             \n\
             \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        )
        .unwrap();
        vk.verify(&note).unwrap();

        // Same key from its published private form: signing reproduces the note byte for byte.
        let skey = STANDARD
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        let seed: [u8; 32] = skey[1..].try_into().unwrap();
        let signer = SigningKey::from_seed("PeterNeumann", &seed).unwrap();
        assert_eq!(signer.verifier_key(), vk);
        assert_eq!(signer.sign_note(note.body()), note);
    }

    #[test]
    fn malformed_notes_are_rejected() {
        for text in [
            "",
            "body\n",
            "body\n\n",
            "body\n\nnot a signature\n",
            "body\n\n\u{2014} name !!!\n",
            "body\n\n\u{2014} name AAAA\n",
            "body\u{7}\n\n\u{2014} name AAAAAAAA\n",
        ] {
            assert!(Note::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn key_files_are_private_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.key");
        let k = key();
        k.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = SigningKey::load("example.test/log", &path).unwrap();
        assert_eq!(back.verifier_key(), k.verifier_key());
        assert!(k.save(&path).is_err(), "never overwrites");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SigningKey::load("example.test/log", &path),
            Err(KeyError::Permissions { .. })
        ));
    }
}
