//! Deliveries signed the way the providers sign them, for the demo and the tests (the same
//! code both use, so what the demo shows is what the tests check).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;
use sha2::Sha256;

/// SendGrid's Signed Event Webhook: ECDSA P-256 over timestamp‖body, base64 DER, for the
/// `X-Twilio-Email-Event-Webhook-Signature` header.
pub fn sendgrid_signature(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let sig: Signature = key.sign(&signed);
    B64.encode(sig.to_der().as_bytes())
}

/// The verification key SendGrid shows for a signing key (base64 DER).
pub fn sendgrid_public_key(key: &SigningKey) -> String {
    let der = p256::PublicKey::from(key.verifying_key())
        .to_public_key_der()
        .expect("a P-256 public key encodes as DER");
    B64.encode(der.as_bytes())
}

/// Mailgun's webhook signature: HMAC-SHA256 of timestamp‖token under the signing key, hex.
pub fn mailgun_signature(signing_key: &str, timestamp: &str, token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
