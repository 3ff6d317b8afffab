//! The W3C WebAuthn Level 3 test vectors (RP example.org): every registration and its paired
//! authentication, then single-byte flips of challenge, origin, rpIdHash and signature.
//!
//! The vectors have fixed challenges, so each pending state from `start_*` is rewritten (through
//! its serialised form) to carry the vector's challenge, and the vector's response goes through
//! the same `finish_*` path as a browser's.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tenet_mfa::{
    AuthenticationOutcome, CeremonyError, CredentialKind, ExtendedError, FactorKind, FactorStore,
    OriginRefusal, PendingAuthentication, PendingRegistration, RelyingParty, RelyingPartyConfig,
    UserAccount, UserFactors,
};
use time::OffsetDateTime;
use time::macros::datetime;
use webauthn_rs_core::error::WebauthnError;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/w3c-webauthn-test-vectors/webauthn-l3-test-vectors.json"
);
const NOW: OffsetDateTime = datetime!(2026-12-04 10:00 UTC);

/// Floors: what this crate achieves; a drop fails the test. webauthn-rs 0.6.2 verifies the
/// ES256, ES384 and 2048-bit RS256 credentials; Tenet's own verifier (`extended.rs`) the
/// Ed25519, Ed448, P-521 and 3488-bit RSA ones, the cross-origin registrations and the TPM
/// attestation (`tpm.rs`, which webauthn-rs 0.6.2 cannot verify for any algorithm). The vectors
/// register as security keys (UV preferred), so the assertions of packed-self-es256,
/// packed-es512 and packed-rs256, made without the user verification done at registration,
/// are accepted and recorded as not verifying the user. none-es256-crossOrigin
/// (`crossOrigin: true` without `topOrigin`) is run with `cross_origin_without_top_origin`,
/// the others without it.
///
/// android-key-es256 is verified by Tenet too (`android_key.rs`): its key description's
/// authorization lists are empty, so they state no origin or purpose to refuse (webauthn-rs
/// refuses it for that).
const MIN_REGISTRATIONS: usize = 15;
const MIN_AUTHENTICATIONS: usize = 15;
const MIN_FLIPS: usize = 105;

struct Pair {
    name: String,
    format: &'static str,
    reg: BTreeMap<String, Vec<u8>>,
    auth: BTreeMap<String, Vec<u8>>,
}

fn load_pairs() -> Vec<Pair> {
    let text = std::fs::read_to_string(CORPUS)
        .unwrap_or_else(|e| panic!("corpus {CORPUS} is missing: {e}"));
    let corpus: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(corpus["common"]["rp_id"], "example.org");
    let mut pairs = Vec::new();
    for vector in corpus["vectors"].as_array().unwrap() {
        let ceremonies = vector["ceremonies"].as_array().unwrap();
        let find = |kind: &str| {
            ceremonies
                .iter()
                .find(|c| c["ceremony"] == kind)
                .map(|c| decode_hex_map(&c["values_hex"]))
        };
        if let (Some(reg), Some(auth)) = (find("registration"), find("authentication")) {
            let name = vector["section_id"]
                .as_str()
                .unwrap()
                .trim_start_matches("sctn-test-vectors-");
            pairs.push(Pair {
                name: name.to_owned(),
                format: format_of(name),
                reg,
                auth,
            });
        }
    }
    pairs
}

fn decode_hex_map(values: &Value) -> BTreeMap<String, Vec<u8>> {
    values
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), hex::decode(v.as_str().unwrap()).unwrap()))
        .collect()
}

fn format_of(name: &str) -> &'static str {
    ["none", "packed", "tpm", "android-key", "apple", "fido-u2f"]
        .into_iter()
        .find(|f| name.starts_with(f))
        .unwrap_or("other")
}

/// The vectors' relying party, which lets https://example.com embed it.
fn rp() -> RelyingParty {
    rp_with_top_origins(vec!["https://example.com".into()])
}

fn rp_with_top_origins(top_origins: Vec<String>) -> RelyingParty {
    rp_with(top_origins, false)
}

fn rp_with(top_origins: Vec<String>, cross_origin_without_top_origin: bool) -> RelyingParty {
    RelyingParty::new(&RelyingPartyConfig {
        rp_id: "example.org".into(),
        rp_name: "Example".into(),
        origins: vec!["https://example.org".into()],
        top_origins,
        cross_origin_without_top_origin,
    })
    .unwrap()
}

/// The vector that is run with `cross_origin_without_top_origin`: its client data says
/// `crossOrigin: true` and names no top origin.
const WITHOUT_TOP_ORIGIN: &str = "none-es256-crossOrigin";

/// Save `user` in a factor store and read it back from the file, as after a restart.
fn through_store(user: &UserFactors) -> UserFactors {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("factors.json");
    let mut store = FactorStore::open(&path).unwrap();
    *store.user_mut("vector") = user.clone();
    store.save().unwrap();
    FactorStore::open(&path)
        .unwrap()
        .user("vector")
        .unwrap()
        .clone()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Rewrite a pending state's challenge (inside its serialised form).
fn with_challenge<T: serde::Serialize + serde::de::DeserializeOwned>(
    pending: &T,
    challenge: &[u8],
) -> T {
    let mut value = serde_json::to_value(pending).unwrap();
    value["state"]["challenge"] = b64(challenge).into();
    serde_json::from_value(value).unwrap()
}

/// The inputs of one ceremony, which the flips modify.
#[derive(Clone)]
struct Inputs {
    challenge: Vec<u8>,
    client_data: Vec<u8>,
    /// attestationObject (registration) or authenticatorData (authentication).
    data: Vec<u8>,
    signature: Vec<u8>,
}

fn register(
    rp: &RelyingParty,
    user: &mut UserFactors,
    id: &[u8],
    inputs: &Inputs,
) -> Result<(), CeremonyError> {
    register_as(rp, user, id, inputs, CredentialKind::SecurityKey)
}

fn register_as(
    rp: &RelyingParty,
    user: &mut UserFactors,
    id: &[u8],
    inputs: &Inputs,
    kind: CredentialKind,
) -> Result<(), CeremonyError> {
    let account = UserAccount {
        name: "vector".into(),
        display_name: "Vector".into(),
    };
    let (_, pending) = rp.start_registration(user, &account, kind, NOW)?;
    let pending: PendingRegistration = with_challenge(&pending, &inputs.challenge);
    let response = json!({
        "id": b64(id), "rawId": b64(id), "type": "public-key", "extensions": {},
        "response": {
            "attestationObject": b64(&inputs.data),
            "clientDataJSON": b64(&inputs.client_data),
        },
    });
    rp.finish_registration(user, &pending, &response.to_string(), NOW)
        .map(|_| ())
}

fn authenticate(
    rp: &RelyingParty,
    user: &mut UserFactors,
    id: &[u8],
    inputs: &Inputs,
) -> Result<(), CeremonyError> {
    authenticate_outcome(rp, user, id, inputs).map(|_| ())
}

fn authenticate_outcome(
    rp: &RelyingParty,
    user: &mut UserFactors,
    id: &[u8],
    inputs: &Inputs,
) -> Result<AuthenticationOutcome, CeremonyError> {
    let (_, pending) = rp.start_authentication(user, NOW)?;
    let pending: PendingAuthentication = with_challenge(&pending, &inputs.challenge);
    let response = json!({
        "id": b64(id), "rawId": b64(id), "type": "public-key", "extensions": {},
        "response": {
            "authenticatorData": b64(&inputs.data),
            "clientDataJSON": b64(&inputs.client_data),
            "signature": b64(&inputs.signature),
            "userHandle": null,
        },
    });
    rp.finish_authentication(user, &pending, &response.to_string(), NOW)
}

fn registration_inputs(pair: &Pair) -> Inputs {
    Inputs {
        challenge: pair.reg["challenge"].clone(),
        client_data: pair.reg["clientDataJSON"].clone(),
        data: pair.reg["attestationObject"].clone(),
        signature: Vec::new(),
    }
}

fn authentication_inputs(pair: &Pair) -> Inputs {
    Inputs {
        challenge: pair.auth["challenge"].clone(),
        client_data: pair.auth["clientDataJSON"].clone(),
        data: pair.auth["authenticatorData"].clone(),
        signature: pair.auth["signature"].clone(),
    }
}

/// Single-byte flips: the challenge the server expects, one byte of the origin inside
/// clientDataJSON, the first byte of rpIdHash, and (for assertions) the signature.
fn flips(inputs: &Inputs, with_signature: bool) -> Vec<(&'static str, Inputs)> {
    let mut out = Vec::new();
    let mut challenge = inputs.clone();
    challenge.challenge[0] ^= 0x01;
    out.push(("challenge", challenge));

    let mut origin = inputs.clone();
    let at = find(&origin.client_data, b"https://example.org").unwrap() + "https://".len();
    origin.client_data[at] ^= 0x01;
    out.push(("origin", origin));

    let mut rp_id_hash = inputs.clone();
    let hash = Sha256::digest(b"example.org");
    let at = find(&rp_id_hash.data, &hash).unwrap();
    rp_id_hash.data[at] ^= 0x01;
    out.push(("rpIdHash", rp_id_hash));

    if with_signature {
        let mut signature = inputs.clone();
        let last = signature.signature.len() - 1;
        signature.signature[last] ^= 0x01;
        out.push(("signature", signature));
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether a flip of `what` was refused for the right reason.
fn refused_for(what: &str, result: &Result<(), CeremonyError>) -> bool {
    use CeremonyError::{Extended, Origin, Verification};
    let Err(error) = result else { return false };
    match what {
        "challenge" => matches!(
            error,
            Verification {
                source: WebauthnError::MismatchedChallenge
            } | Extended(ExtendedError::ChallengeMismatch)
        ),
        "origin" => matches!(error, Origin(OriginRefusal::OutsideRpId { .. })),
        "rpIdHash" => matches!(
            error,
            Verification {
                source: WebauthnError::InvalidRPIDHash
            } | Origin(OriginRefusal::RpIdHashMismatch { .. })
        ),
        "signature" => matches!(
            error,
            Verification {
                source: WebauthnError::AuthenticationFailure | WebauthnError::SignatureInvalid
            } | Extended(ExtendedError::SignatureInvalid)
        ),
        _ => false,
    }
}

#[derive(Default)]
struct Tally {
    registered: usize,
    authenticated: usize,
    flips: usize,
    flips_rejected: usize,
    per_format: BTreeMap<&'static str, (usize, usize)>,
}

impl Tally {
    /// Count flips, each of which must be refused for its own reason.
    fn flips(&mut self, pair: &Pair, results: Vec<(&str, Result<(), CeremonyError>)>) {
        for (what, result) in results {
            self.flips += 1;
            if refused_for(what, &result) {
                self.flips_rejected += 1;
            } else {
                println!(
                    "  {}: flipped {what} gave {:?}",
                    pair.name,
                    result.err().map(|e| e.to_string())
                );
            }
        }
    }

    /// One pair: registration, flipped registrations, flipped assertions, the assertion.
    /// Flips count only for ceremonies whose unflipped form is accepted.
    fn run(&mut self, rp: &RelyingParty, pair: &Pair) {
        self.per_format.entry(pair.format).or_default().1 += 1;
        let id = &pair.reg["credential_id"];
        let (reg, auth) = (registration_inputs(pair), authentication_inputs(pair));
        let mut user = UserFactors::new(uuid::Uuid::new_v4());
        if let Err(e) = register(rp, &mut user, id, &reg) {
            println!(
                "  {} [{}]: registration refused: {e}",
                pair.name, pair.format
            );
            return;
        }
        self.registered += 1;
        let mut user = through_store(&user);
        let results = flips(&reg, false)
            .into_iter()
            .map(|(what, flipped)| {
                let mut scratch = UserFactors::new(uuid::Uuid::new_v4());
                (what, register(rp, &mut scratch, id, &flipped))
            })
            .collect();
        self.flips(pair, results);

        // Flipped assertions first: a refusal leaves the stored counter as it was.
        let results: Vec<_> = flips(&auth, true)
            .into_iter()
            .map(|(what, flipped)| (what, authenticate(rp, &mut user, id, &flipped)))
            .collect();
        match authenticate(rp, &mut user, id, &auth) {
            Ok(()) => {
                self.authenticated += 1;
                self.per_format.entry(pair.format).or_default().0 += 1;
                self.flips(pair, results);
                // The same assertion again: refused as a clone unless the authenticator keeps
                // no counter (0), which WebAuthn allows.
                let counter = u32::from_be_bytes(auth.data[33..37].try_into().unwrap());
                let replay = authenticate(rp, &mut user, id, &auth);
                if counter == 0 {
                    assert!(replay.is_ok(), "{}: {replay:?}", pair.name);
                } else {
                    assert!(
                        matches!(replay, Err(CeremonyError::CounterRegression { .. })),
                        "{}: {replay:?}",
                        pair.name
                    );
                }
            }
            Err(e) => println!(
                "  {} [{}]: authentication refused: {e}",
                pair.name, pair.format
            ),
        }
    }
}

#[test]
fn w3c_webauthn_test_vectors() {
    let pairs = load_pairs();
    assert_eq!(
        pairs.len(),
        15,
        "expected 15 registration + authentication pairs"
    );
    let rp = rp();
    let blind = rp_with(vec!["https://example.com".into()], true);
    let mut tally = Tally::default();
    for pair in &pairs {
        let rp = if pair.name == WITHOUT_TOP_ORIGIN {
            &blind
        } else {
            &rp
        };
        tally.run(rp, pair);
    }

    for (format, (ok, total)) in &tally.per_format {
        println!("webauthn vectors [{format}]: {ok}/{total} pairs accepted");
    }
    println!(
        "webauthn vectors (registration): {}/{}",
        tally.registered,
        pairs.len()
    );
    println!(
        "webauthn vectors (authentication): {}/{}",
        tally.authenticated,
        pairs.len()
    );
    println!(
        "webauthn vectors (flips rejected): {}/{}",
        tally.flips_rejected, tally.flips
    );

    assert_eq!(
        tally.flips_rejected, tally.flips,
        "a flip was accepted or refused for another reason"
    );
    assert!(
        tally.registered >= MIN_REGISTRATIONS,
        "registrations fell below the floor"
    );
    assert!(
        tally.authenticated >= MIN_AUTHENTICATIONS,
        "authentications fell below the floor"
    );
    assert!(
        tally.flips >= MIN_FLIPS,
        "fewer flips were exercised than before"
    );
}

/// Without top_origins, the cross-origin vectors are refused at registration, and at
/// authentication too (which webauthn-rs alone does not check). The one without topOrigin is
/// refused whatever top_origins lists, unless cross_origin_without_top_origin is set.
#[test]
fn cross_origin_vectors_are_refused_without_a_configured_top_origin() {
    let pairs = load_pairs();
    let embedded = rp();
    let alone = rp_with_top_origins(Vec::new());
    for name in ["none-es256-topOrigin", "none-es256-crossOrigin"] {
        let pair = pairs.iter().find(|p| p.name == name).unwrap();
        let id = &pair.reg["credential_id"];
        let (reg, auth) = (registration_inputs(pair), authentication_inputs(pair));
        let mut user = UserFactors::new(uuid::Uuid::new_v4());
        let refused = register(&alone, &mut user, id, &reg).unwrap_err();
        assert!(
            matches!(
                refused,
                CeremonyError::Origin(
                    OriginRefusal::TopOriginNotAllowed { .. }
                        | OriginRefusal::CrossOriginWithoutTopOrigin
                )
            ),
            "{name}: {refused}"
        );
        if name == WITHOUT_TOP_ORIGIN {
            let refused = register(&embedded, &mut user, id, &reg).unwrap_err();
            assert!(
                matches!(
                    refused,
                    CeremonyError::Origin(OriginRefusal::CrossOriginWithoutTopOrigin)
                ),
                "{refused}"
            );
            register(&rp_with(Vec::new(), true), &mut user, id, &reg).unwrap();
            let refused = authenticate(&embedded, &mut user, id, &auth).unwrap_err();
            assert!(
                matches!(
                    refused,
                    CeremonyError::Origin(OriginRefusal::CrossOriginWithoutTopOrigin)
                ),
                "{refused}"
            );
            authenticate(&rp_with(Vec::new(), true), &mut user, id, &auth).unwrap();
        }
        if name == "none-es256-topOrigin" {
            register(&embedded, &mut user, id, &reg).unwrap();
            let refused = authenticate(&alone, &mut user, id, &auth).unwrap_err();
            assert!(
                matches!(
                    refused,
                    CeremonyError::Origin(OriginRefusal::TopOriginNotAllowed { .. })
                ),
                "{refused}"
            );
            authenticate(&embedded, &mut user, id, &auth).unwrap();
        }
    }
}

/// The UV flag (bit 2) of authenticator data, or of an attestation object's authData.
fn uv_flag(authenticator_data: &[u8]) -> bool {
    authenticator_data[32] & 0x04 != 0
}

/// packed-self-es256 (verified by webauthn-rs), packed-es512 and packed-rs256 (verified by
/// Tenet) register with user verification and assert without it. As a security key (UV
/// preferred) such a sign-in is accepted and recorded as not verifying the user; as a passkey
/// (UV required) it is refused. A sign-in with UV is recorded as verifying the user.
#[test]
fn a_sign_in_without_uv_is_recorded_for_security_keys_and_refused_for_passkeys() {
    let pairs = load_pairs();
    let rp = rp();
    let mut paths = Vec::new();
    for name in ["packed-self-es256", "packed-es512", "packed-rs256"] {
        let pair = pairs.iter().find(|p| p.name == name).unwrap();
        let id = &pair.reg["credential_id"];
        let (reg, auth) = (registration_inputs(pair), authentication_inputs(pair));
        assert!(!uv_flag(&auth.data), "{name}: the assertion has UV");

        let mut user = UserFactors::new(uuid::Uuid::new_v4());
        register_as(&rp, &mut user, id, &reg, CredentialKind::SecurityKey).unwrap();
        assert!(
            user.credentials()[0].user_verified(),
            "{name}: registered with UV"
        );
        paths.push(user.credentials()[0].verified_by_tenet());
        let mut user = through_store(&user);
        let outcome = authenticate_outcome(&rp, &mut user, id, &auth).unwrap();
        assert!(!outcome.user_verified, "{name}");
        assert_eq!(outcome.factor.kind, FactorKind::WebAuthn);
        assert!(!outcome.factor.user_verified, "{name}");

        let mut user = UserFactors::new(uuid::Uuid::new_v4());
        register_as(&rp, &mut user, id, &reg, CredentialKind::Passkey).unwrap();
        let refused = authenticate_outcome(&rp, &mut user, id, &auth).unwrap_err();
        assert!(
            matches!(refused, CeremonyError::UserNotVerified),
            "{name}: {refused}"
        );
    }
    assert!(paths.contains(&true) && paths.contains(&false), "{paths:?}");

    // packed-es256 (webauthn-rs) and packed-ed448 (Tenet) assert with UV; packed-ed448
    // registered without it, so only as a security key.
    for (name, kinds) in [
        (
            "packed-es256",
            &[CredentialKind::Passkey, CredentialKind::SecurityKey][..],
        ),
        ("packed-ed448", &[CredentialKind::SecurityKey][..]),
    ] {
        let pair = pairs.iter().find(|p| p.name == name).unwrap();
        let (reg, auth) = (registration_inputs(pair), authentication_inputs(pair));
        assert!(uv_flag(&auth.data), "{name}");
        let id = &pair.reg["credential_id"];
        for &kind in kinds {
            let mut user = UserFactors::new(uuid::Uuid::new_v4());
            register_as(&rp, &mut user, id, &reg, kind).unwrap();
            let outcome = authenticate_outcome(&rp, &mut user, id, &auth).unwrap();
            assert!(
                outcome.user_verified && outcome.factor.user_verified,
                "{name}"
            );
        }
    }
}

/// The android-key attestation certificate's key description must carry clientDataHash as its
/// attestation challenge: the statement's signature does not cover the certificate, so a
/// changed byte there is caught only by that check.
#[test]
fn an_android_key_statement_whose_certificate_names_another_challenge_is_refused() {
    let pairs = load_pairs();
    let pair = pairs
        .iter()
        .find(|p| p.name.starts_with("android-key"))
        .unwrap();
    let inputs = registration_inputs(pair);
    let hash = Sha256::digest(&inputs.client_data);
    let at = find(&inputs.data, hash.as_slice()).expect("the challenge is in the certificate");
    let mut tampered = inputs.clone();
    tampered.data[at] ^= 0x01;
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let result = register(&rp(), &mut user, &pair.reg["credential_id"], &tampered);
    let error = result.unwrap_err().to_string();
    assert!(error.contains("attestationChallenge"), "{error}");
    // The untouched statement registers.
    register(&rp(), &mut user, &pair.reg["credential_id"], &inputs).unwrap();
}
