//! The Standard Webhooks verifier on arbitrary headers and bodies: never
//! panics, accepts only what was signed with the key, and always accepts a
//! correct signature of any body within the tolerance.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mpanel::webhooks::{TOLERANCE_SECS, sign, verify};

const KEY: &[u8] = b"fuzz-key-of-at-least-24-bytes!!";
const NOW: i64 = 1_795_611_600;

fuzz_target!(|input: (&str, &str, &str, &[u8], i16)| {
    let (id, timestamp, signature, body, skew) = input;
    let mut headers = HeaderMap::new();
    for (name, value) in [("webhook-id", id), ("webhook-timestamp", timestamp), ("webhook-signature", signature)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if let Ok(verified) = verify(&headers, body, KEY, NOW) {
        // Accepted: then the signature header must hold the real MAC.
        let expected = sign(&verified.id, verified.timestamp, body, KEY);
        assert!(signature.split(' ').any(|s| s == expected), "accepted a signature that is not the MAC");
    }

    // A correct signature is always accepted, for every id the verifier
    // allows: visible ASCII and spaces (what `HeaderValue::to_str` reads;
    // other bytes are obs-text, refused), trimmed, 1 to 200 bytes.
    let ts = NOW + i64::from(skew) % (TOLERANCE_SECS + 1);
    let id: String =
        id.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(200).collect::<String>().trim().to_string();
    let Ok(id_value) = HeaderValue::from_str(&id) else { return };
    if id.is_empty() {
        return;
    }
    let mut good = HeaderMap::new();
    good.insert("webhook-id", id_value);
    good.insert("webhook-timestamp", HeaderValue::from(ts));
    let Ok(sig) = HeaderValue::from_str(&sign(&id, ts, body, KEY)) else { return };
    good.insert("webhook-signature", sig);
    assert!(verify(&good, body, KEY, NOW).is_ok(), "rejected a correct signature");
});
