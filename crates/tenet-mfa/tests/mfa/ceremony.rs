//! Full registration and authentication with webauthn-authenticator-rs's soft passkey, and the
//! refusals: wrong origin, counter regression, unknown credential, replayed state, credential ids
//! over 1023 bytes or not the one sent, re-registration, a type other than public-key, another
//! user's userHandle.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tenet_mfa::json::{CreationChallengeResponse, RequestChallengeResponse};
use tenet_mfa::{
    CeremonyError, CredentialKind, FactorKind, FactorStore, OriginRefusal, PendingAuthentication,
    RelyingParty, RelyingPartyConfig, UserAccount, UserFactors,
};
use time::OffsetDateTime;
use time::macros::datetime;
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const ORIGIN: &str = "https://login.example.test";
const NOW: OffsetDateTime = datetime!(2026-12-04 10:00 UTC);

fn rp() -> RelyingParty {
    RelyingParty::new(&RelyingPartyConfig {
        rp_id: "example.test".into(),
        rp_name: "Tenet".into(),
        origins: vec![ORIGIN.into()],
        top_origins: Vec::new(),
        cross_origin_without_top_origin: false,
    })
    .unwrap()
}

fn account() -> UserAccount {
    UserAccount {
        name: "ada@example.test".into(),
        display_name: "Ada".into(),
    }
}

fn origin(s: &str) -> Url {
    Url::parse(s).unwrap()
}

/// A soft passkey that reports user verification (as a platform passkey with a PIN would).
fn passkey() -> SoftPasskey {
    SoftPasskey::new(true)
}

fn create(key: &mut SoftPasskey, at: &str, challenge: CreationChallengeResponse) -> String {
    let response = key.do_registration(origin(at), challenge).unwrap();
    serde_json::to_string(&response).unwrap()
}

fn get(key: &mut SoftPasskey, at: &str, challenge: RequestChallengeResponse) -> String {
    let response = key.do_authentication(origin(at), challenge).unwrap();
    serde_json::to_string(&response).unwrap()
}

fn register(
    rp: &RelyingParty,
    user: &mut UserFactors,
    key: &mut SoftPasskey,
    kind: CredentialKind,
) {
    let (challenge, pending) = rp.start_registration(user, &account(), kind, NOW).unwrap();
    let response = create(key, ORIGIN, challenge);
    rp.finish_registration(user, &pending, &response, NOW)
        .unwrap();
}

fn start_auth(
    rp: &RelyingParty,
    user: &mut UserFactors,
) -> (RequestChallengeResponse, PendingAuthentication) {
    rp.start_authentication(user, NOW).unwrap()
}

#[test]
fn passkey_registers_and_authenticates_and_the_store_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("factors.json");
    let rp = rp();
    let mut key = passkey();
    let mut store = FactorStore::open(&path).unwrap();
    let user = store.user_mut("https://idp.example.test|ada");

    let (challenge, pending) = rp
        .start_registration(user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    // The state the server keeps survives a round trip through JSON.
    let pending = serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
    let response = create(&mut key, ORIGIN, challenge);
    let credential = rp
        .finish_registration(user, &pending, &response, NOW)
        .unwrap();
    assert_eq!(credential.kind(), CredentialKind::Passkey);
    assert!(credential.user_verified());
    assert_eq!(credential.counter(), 0);
    assert_eq!(credential.created_at(), NOW);
    assert_eq!(credential.last_used_at(), None);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(credential.id()).unwrap(),
        credential.raw_id()
    );
    store.save().unwrap();

    let mut store = FactorStore::open(&path).unwrap();
    let user = store.user_mut("https://idp.example.test|ada");
    let later = NOW + time::Duration::minutes(10);
    let (challenge, pending) = rp.start_authentication(user, later).unwrap();
    let response = get(&mut key, ORIGIN, challenge);
    let outcome = rp
        .finish_authentication(user, &pending, &response, later)
        .unwrap();
    assert_eq!(outcome.credential_id, credential.id());
    assert!(outcome.user_verified);
    assert_eq!(outcome.counter, 1);
    assert_eq!(outcome.factor.kind, FactorKind::WebAuthn);
    assert!(outcome.factor.is_phishing_resistant());
    assert_eq!(outcome.factor.used_at, later);
    assert_eq!(user.credentials()[0].counter(), 1);
    assert_eq!(user.credentials()[0].last_used_at(), Some(later));
}

#[test]
fn passkey_without_user_verification_is_refused_but_a_security_key_is_accepted() {
    let rp = rp();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let mut no_uv = SoftPasskey::new(false);
    let (challenge, _) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    // The soft authenticator itself refuses a request that requires verification it lacks.
    assert!(no_uv.do_registration(origin(ORIGIN), challenge).is_err());

    register(&rp, &mut user, &mut no_uv, CredentialKind::SecurityKey);
    assert!(!user.credentials()[0].user_verified());
    let (challenge, pending) = start_auth(&rp, &mut user);
    let response = get(&mut no_uv, ORIGIN, challenge);
    let outcome = rp
        .finish_authentication(&mut user, &pending, &response, NOW)
        .unwrap();
    assert_eq!(outcome.kind, CredentialKind::SecurityKey);
    assert!(!outcome.user_verified);
}

#[test]
fn registration_from_an_unconfigured_port_is_refused() {
    let rp = rp();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let (challenge, pending) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    let response = create(&mut passkey(), "https://login.example.test:8443", challenge);
    let err = rp
        .finish_registration(&mut user, &pending, &response, NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CeremonyError::Origin(OriginRefusal::NotConfigured { .. })
        ),
        "{err}"
    );
    assert!(user.credentials().is_empty());
}

#[test]
fn assertion_with_a_look_alike_origin_is_refused() {
    let rp = rp();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let mut key = passkey();
    register(&rp, &mut user, &mut key, CredentialKind::Passkey);

    for evil in ["https://evilexample.test", "http://login.example.test"] {
        let (challenge, pending) = start_auth(&rp, &mut user);
        let response = get(&mut key, ORIGIN, challenge);
        let tampered = replace_origin(&response, evil);
        let err = rp
            .finish_authentication(&mut user, &pending, &tampered, NOW)
            .unwrap_err();
        assert!(matches!(err, CeremonyError::Origin(_)), "{evil}: {err}");
    }
}

/// Rewrite the origin inside the response's clientDataJSON, as a phishing proxy would.
fn replace_origin(response_json: &str, new_origin: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(response_json).unwrap();
    let encoded = value["response"]["clientDataJSON"].as_str().unwrap();
    let mut client: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
    client["origin"] = new_origin.into();
    let bytes = serde_json::to_vec(&client).unwrap();
    value["response"]["clientDataJSON"] = URL_SAFE_NO_PAD.encode(bytes).into();
    value.to_string()
}

#[test]
fn counter_that_goes_backwards_is_refused_as_a_possible_clone() {
    let rp = rp();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let mut key = passkey();
    register(&rp, &mut user, &mut key, CredentialKind::Passkey);

    // Two ceremonies answered in order (counters 1 then 2), finished out of order.
    let (first_challenge, first) = start_auth(&rp, &mut user);
    let (second_challenge, second) = start_auth(&rp, &mut user);
    let first_response = get(&mut key, ORIGIN, first_challenge);
    let second_response = get(&mut key, ORIGIN, second_challenge);
    let outcome = rp
        .finish_authentication(&mut user, &second, &second_response, NOW)
        .unwrap();
    assert_eq!(outcome.counter, 2);

    let err = rp
        .finish_authentication(&mut user, &first, &first_response, NOW)
        .unwrap_err();
    match err {
        CeremonyError::CounterRegression {
            stored, presented, ..
        } => {
            assert_eq!((stored, presented), (2, 1));
        }
        other => panic!("expected a counter regression, got {other}"),
    }
    assert_eq!(user.credentials()[0].counter(), 2);
}

#[test]
fn assertion_by_a_credential_registered_to_someone_else_is_refused() {
    let rp = rp();
    let mut alice = UserFactors::new(uuid::Uuid::new_v4());
    let mut bob = UserFactors::new(uuid::Uuid::new_v4());
    let mut alice_key = passkey();
    let mut bob_key = passkey();
    register(&rp, &mut alice, &mut alice_key, CredentialKind::Passkey);
    register(&rp, &mut bob, &mut bob_key, CredentialKind::Passkey);

    // A hostile client answers Bob's challenge with Alice's key.
    let (mut challenge, pending) = start_auth(&rp, &mut bob);
    let (alice_challenge, _) = start_auth(&rp, &mut alice);
    challenge.public_key.allow_credentials = alice_challenge.public_key.allow_credentials;
    let response = get(&mut alice_key, ORIGIN, challenge);
    let err = rp
        .finish_authentication(&mut bob, &pending, &response, NOW)
        .unwrap_err();
    assert!(
        matches!(err, CeremonyError::UnknownCredential { .. }),
        "{err}"
    );

    // A credential removed after the ceremony began is refused too.
    let (challenge, pending) = start_auth(&rp, &mut bob);
    let response = get(&mut bob_key, ORIGIN, challenge);
    let id = bob.credentials()[0].id().to_owned();
    assert!(bob.remove_credential(&id));
    let err = rp
        .finish_authentication(&mut bob, &pending, &response, NOW)
        .unwrap_err();
    assert!(
        matches!(err, CeremonyError::UnknownCredential { .. }),
        "{err}"
    );
}

#[test]
fn a_pending_state_is_good_for_one_attempt_only() {
    let rp = rp();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let mut key = passkey();
    register(&rp, &mut user, &mut key, CredentialKind::Passkey);

    let (challenge, pending) = start_auth(&rp, &mut user);
    let response = get(&mut key, ORIGIN, challenge.clone());
    rp.finish_authentication(&mut user, &pending, &response, NOW)
        .unwrap();

    // The same response again, and a fresh signature over the same challenge.
    let err = rp
        .finish_authentication(&mut user, &pending, &response, NOW)
        .unwrap_err();
    assert!(matches!(err, CeremonyError::NotOpen { .. }), "{err}");
    let fresh = get(&mut key, ORIGIN, challenge);
    let err = rp
        .finish_authentication(&mut user, &pending, &fresh, NOW)
        .unwrap_err();
    assert!(matches!(err, CeremonyError::NotOpen { .. }), "{err}");

    // Registration states too.
    let (challenge, pending) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    let response = create(&mut passkey(), ORIGIN, challenge);
    rp.finish_registration(&mut user, &pending, &response, NOW)
        .unwrap();
    let err = rp
        .finish_registration(&mut user, &pending, &response, NOW)
        .unwrap_err();
    assert!(matches!(err, CeremonyError::NotOpen { .. }), "{err}");
    assert_eq!(user.credentials().len(), 2);
}

#[test]
fn expired_or_foreign_states_are_refused() {
    let rp = rp();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let mut other = UserFactors::new(uuid::Uuid::new_v4());
    let mut key = passkey();
    register(&rp, &mut user, &mut key, CredentialKind::Passkey);

    let (challenge, pending) = start_auth(&rp, &mut user);
    let response = get(&mut key, ORIGIN, challenge);
    let err = rp
        .finish_authentication(&mut other, &pending, &response, NOW)
        .unwrap_err();
    assert!(matches!(err, CeremonyError::WrongUser { .. }), "{err}");
    let late = NOW + time::Duration::minutes(6);
    let err = rp
        .finish_authentication(&mut user, &pending, &response, late)
        .unwrap_err();
    assert!(matches!(err, CeremonyError::Expired { .. }), "{err}");

    let err = rp.start_authentication(&mut other, NOW).unwrap_err();
    assert!(matches!(err, CeremonyError::NoCredentials), "{err}");
    let (_, pending) = start_auth(&rp, &mut user);
    let err = rp
        .finish_authentication(&mut user, &pending, "{not json", NOW)
        .unwrap_err();
    assert!(
        matches!(err, CeremonyError::MalformedResponse { .. }),
        "{err}"
    );
}

/// The response JSON with `edit` applied to its parsed form.
fn edit_json(response_json: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(response_json).unwrap();
    edit(&mut value);
    value.to_string()
}

/// The registration response with its `id`/`rawId` set to `raw_id` (when given) and the id in
/// its attested credential data replaced by `attested_id` (when given).
fn rewrite_ids(response_json: &str, raw_id: Option<&[u8]>, attested_id: Option<&[u8]>) -> String {
    use serde_cbor_2::Value;
    edit_json(response_json, |v| {
        if let Some(raw_id) = raw_id {
            let text = URL_SAFE_NO_PAD.encode(raw_id);
            v["id"] = text.clone().into();
            v["rawId"] = text.into();
        }
        if let Some(attested_id) = attested_id {
            let object = v["response"]["attestationObject"].as_str().unwrap();
            let mut object: Value =
                serde_cbor_2::from_slice(&URL_SAFE_NO_PAD.decode(object).unwrap()).unwrap();
            let Value::Map(map) = &mut object else {
                panic!("attestationObject is not a map")
            };
            let Some(Value::Bytes(auth)) = map.get_mut(&Value::Text("authData".into())) else {
                panic!("no authData")
            };
            // rpIdHash 32, flags 1, counter 4, aaguid 16, then the id's length and the id.
            let len = usize::from(u16::from_be_bytes([auth[53], auth[54]]));
            let mut rewritten = auth[..53].to_vec();
            rewritten.extend_from_slice(&u16::try_from(attested_id.len()).unwrap().to_be_bytes());
            rewritten.extend_from_slice(attested_id);
            rewritten.extend_from_slice(&auth[55 + len..]);
            *auth = rewritten;
            v["response"]["attestationObject"] = URL_SAFE_NO_PAD
                .encode(serde_cbor_2::to_vec(&object).unwrap())
                .into();
        }
    })
}

fn is_credential_id_refusal(result: &Result<tenet_mfa::Credential, CeremonyError>) -> bool {
    matches!(
        result,
        Err(CeremonyError::Extended(
            tenet_mfa::ExtendedError::CredentialId { .. }
        ))
    )
}

#[test]
fn registration_with_a_credential_id_over_1023_bytes_is_refused() {
    let rp = rp();
    let mut key = passkey();
    let long = vec![7u8; 1024];
    for (raw_id, attested_id) in [
        (Some(long.as_slice()), Some(long.as_slice())),
        (Some(long.as_slice()), None),
        (None, Some(long.as_slice())),
    ] {
        let mut user = UserFactors::new(uuid::Uuid::new_v4());
        let (challenge, pending) = rp
            .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
            .unwrap();
        let response = rewrite_ids(&create(&mut key, ORIGIN, challenge), raw_id, attested_id);
        let refused = rp.finish_registration(&mut user, &pending, &response, NOW);
        assert!(is_credential_id_refusal(&refused), "{refused:?}");
        assert!(user.credentials().is_empty());
    }
    // The largest allowed id passes the id checks (and is then refused by the signature over
    // the rewritten authenticator data, not by its length).
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let (challenge, pending) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    let max = vec![7u8; 1023];
    let response = rewrite_ids(&create(&mut key, ORIGIN, challenge), Some(&max), Some(&max));
    let refused = rp.finish_registration(&mut user, &pending, &response, NOW);
    assert!(
        refused.is_err() && !is_credential_id_refusal(&refused),
        "{refused:?}"
    );
}

#[test]
fn registration_whose_id_is_not_its_raw_id_or_attested_id_is_refused() {
    let rp = rp();
    let mut key = passkey();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let (challenge, pending) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    let response = edit_json(&create(&mut key, ORIGIN, challenge), |v| {
        v["id"] = URL_SAFE_NO_PAD.encode([1u8; 16]).into();
    });
    let refused = rp.finish_registration(&mut user, &pending, &response, NOW);
    assert!(is_credential_id_refusal(&refused), "{refused:?}");

    let (challenge, pending) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    let response = rewrite_ids(&create(&mut key, ORIGIN, challenge), Some(&[1u8; 16]), None);
    let refused = rp.finish_registration(&mut user, &pending, &response, NOW);
    assert!(is_credential_id_refusal(&refused), "{refused:?}");
}

#[test]
fn re_registering_an_existing_credential_id_is_already_registered() {
    let rp = rp();
    let mut key = passkey();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    register(&rp, &mut user, &mut key, CredentialKind::Passkey);
    let existing = user.credentials()[0].raw_id().to_vec();

    let (challenge, pending) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    let response = rewrite_ids(
        &create(&mut key, ORIGIN, challenge),
        Some(&existing),
        Some(&existing),
    );
    let refused = rp.finish_registration(&mut user, &pending, &response, NOW);
    assert!(
        matches!(&refused, Err(CeremonyError::AlreadyRegistered { id }) if *id == URL_SAFE_NO_PAD.encode(&existing)),
        "{refused:?}"
    );
    assert_eq!(user.credentials().len(), 1);
}

#[test]
fn responses_whose_type_is_not_public_key_are_refused() {
    let rp = rp();
    let mut key = passkey();
    let mut user = UserFactors::new(uuid::Uuid::new_v4());
    let (challenge, pending) = rp
        .start_registration(&mut user, &account(), CredentialKind::Passkey, NOW)
        .unwrap();
    let response = edit_json(&create(&mut key, ORIGIN, challenge), |v| {
        v["type"] = "password".into();
    });
    let refused = rp.finish_registration(&mut user, &pending, &response, NOW);
    assert!(
        matches!(&refused, Err(CeremonyError::CredentialType { found }) if found == "password"),
        "{refused:?}"
    );
    assert!(user.credentials().is_empty());

    register(&rp, &mut user, &mut key, CredentialKind::Passkey);
    let (challenge, pending) = start_auth(&rp, &mut user);
    let response = edit_json(&get(&mut key, ORIGIN, challenge), |v| {
        v["type"] = "password".into();
    });
    let refused = rp.finish_authentication(&mut user, &pending, &response, NOW);
    assert!(
        matches!(&refused, Err(CeremonyError::CredentialType { found }) if found == "password"),
        "{refused:?}"
    );
    assert_eq!(user.credentials()[0].counter(), 0);
}

#[test]
fn assertion_with_another_users_handle_is_refused_and_this_users_is_accepted() {
    let rp = rp();
    let mut key = passkey();
    let id = uuid::Uuid::new_v4();
    let mut user = UserFactors::new(id);
    register(&rp, &mut user, &mut key, CredentialKind::Passkey);

    let (challenge, pending) = start_auth(&rp, &mut user);
    let response = edit_json(&get(&mut key, ORIGIN, challenge), |v| {
        v["response"]["userHandle"] = URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes())
            .into();
    });
    let refused = rp.finish_authentication(&mut user, &pending, &response, NOW);
    assert!(
        matches!(
            &refused,
            Err(CeremonyError::Extended(
                tenet_mfa::ExtendedError::UserHandleMismatch
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(user.credentials()[0].counter(), 0);

    let (challenge, pending) = start_auth(&rp, &mut user);
    let response = edit_json(&get(&mut key, ORIGIN, challenge), |v| {
        v["response"]["userHandle"] = URL_SAFE_NO_PAD.encode(id.as_bytes()).into();
    });
    let outcome = rp
        .finish_authentication(&mut user, &pending, &response, NOW)
        .unwrap();
    // The refused assertion used the authenticator's counter 1.
    assert_eq!(outcome.counter, 2);
}
