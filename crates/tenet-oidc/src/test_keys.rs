//! Test-only key generation and token signing with aws-lc-rs, for crafting any header.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::config::JwsAlgorithm;
use crate::keys::KeySet;

/// An RSA signing key with its public JWK (RS256) and SPKI PEM.
pub struct RsaKey {
    pub pair: RsaKeyPair,
    pub jwk: Value,
    pub pem: String,
}

/// A P-256 signing key with its public JWK (ES256).
pub struct EcKey {
    pub pair: EcdsaKeyPair,
    pub jwk: Value,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn rsa_key(kid: &str) -> RsaKey {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = pair.public_key();
    let jwk = json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    });
    let der = aws_lc_rs::encoding::AsDer::as_der(public).unwrap();
    let pem = pem_block("PUBLIC KEY", der.as_ref());
    RsaKey { pair, jwk, pem }
}

pub fn ec_key(kid: &str) -> EcKey {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "kid": kid, "crv": "P-256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    });
    EcKey { pair, jwk }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A key set holding one fresh RSA key under `kid`, and that key.
pub fn rsa_set(kid: &str) -> (KeySet, RsaKey) {
    let key = rsa_key(kid);
    let jwks = json!({ "keys": [key.jwk] });
    let set = KeySet::from_jwks(jwks.to_string().as_bytes(), &[JwsAlgorithm::RS256]).unwrap();
    (set, key)
}

pub fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    )
}

pub fn with_signature(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header, payload), b64(signature))
}

pub fn sign_rs256(key: &RsaKeyPair, header: &Value, payload: &Value) -> String {
    let input = signing_input(header, payload);
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", b64(&signature))
}

pub fn sign_es256(key: &EcdsaKeyPair, header: &Value, payload: &Value) -> String {
    let input = signing_input(header, payload);
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature.as_ref()))
}
