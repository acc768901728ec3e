//! What cosign says it verified, read back: its exit code is not enough.
//! cosign 3's `verify` accepts any Sigstore bundle of the signer, an
//! attestation of another type included (an image with only a build
//! attestation "verifies"), so the gate requires what it printed to name a
//! signature ([`LEGACY_SIGNATURE_TYPE`] or [`SIGNATURE_PREDICATE`]) of
//! exactly the image's digest. cosign 2's `verify-attestation` prints the
//! DSSE envelopes it verified, whose in-toto statement must be a
//! signature's of that digest.

use serde_json::Value;

use super::{LEGACY_SIGNATURE_TYPE, SIGNATURE_PREDICATE};

/// `cosign verify`'s stdout (a JSON array of the verified payloads' claims):
/// `Ok` when one of them is a signature of `digest`, otherwise what it
/// verified instead.
pub fn check_verify_output(stdout: &str, digest: &str) -> Result<(), String> {
    let start = stdout.find('[').unwrap_or(stdout.len());
    let entries: Vec<Value> = serde_json::from_str(stdout[start..].trim())
        .map_err(|_| "cosign printed no verified claims (expected a JSON array)".to_string())?;
    let mut seen = Vec::new();
    for entry in &entries {
        let kind = text(entry, "/critical/type");
        let signed = text(entry, "/critical/image/docker-manifest-digest");
        if [LEGACY_SIGNATURE_TYPE, SIGNATURE_PREDICATE].contains(&kind) && signed == digest {
            return Ok(());
        }
        seen.push(format!("{kind:?} of {signed}"));
    }
    Err(not_a_signature(&seen, digest))
}

/// `cosign verify-attestation`'s stdout (one DSSE envelope per line): `Ok`
/// when one of them is a signature statement of `digest`.
pub fn check_attestation_output(stdout: &str, digest: &str) -> Result<(), String> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let mut seen = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let Some(statement) = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|envelope| envelope.get("payload")?.as_str().map(String::from))
            .and_then(|payload| base64_decode(&payload))
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        else {
            seen.push("an envelope that is not an in-toto statement".to_string());
            continue;
        };
        let kind = text(&statement, "/predicateType");
        let subjects: Vec<&str> = statement
            .get("subject")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| text(s, "/digest/sha256"))
            .collect();
        if kind == SIGNATURE_PREDICATE && subjects.contains(&hex) {
            return Ok(());
        }
        seen.push(format!("{kind:?} of sha256:{}", subjects.join(",sha256:")));
    }
    Err(not_a_signature(&seen, digest))
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn not_a_signature(seen: &[String], digest: &str) -> String {
    if seen.is_empty() {
        return format!("cosign verified nothing for {digest}");
    }
    format!(
        "cosign verified {}, but no signature of {digest} (a signature is of type {LEGACY_SIGNATURE_TYPE:?} or {SIGNATURE_PREDICATE:?}): sign the digest with `cosign sign`",
        seen.join(", ")
    )
}

/// Standard base64 (DSSE's encoding; the URL-safe alphabet is read too),
/// padding optional; `None` when it is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    (count < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:477645f6339f2ff786b6614e14ad6b5094b946145381f4c93dfd05f17cb80ce8";

    /// cosign 3.1.1 `verify` of a bundle (stdout as printed, leading blank line included).
    fn bundle(kind: &str, digest: &str) -> String {
        format!("\n[{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/c3w/img@{digest}\"}},\"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\"type\":\"{kind}\"}},\"optional\":{{}}}}]\n")
    }

    #[test]
    fn verify_must_name_a_signature_of_the_digest() {
        check_verify_output(&bundle(SIGNATURE_PREDICATE, DIGEST), DIGEST).unwrap();
        check_verify_output(&bundle(LEGACY_SIGNATURE_TYPE, DIGEST), DIGEST).unwrap();
        // Only an attestation of another type: cosign 3 exits 0, the gate refuses.
        let custom = check_verify_output(&bundle("https://example.com/custom/v1", DIGEST), DIGEST)
            .unwrap_err();
        assert!(
            custom.contains("\"https://example.com/custom/v1\" of sha256:4776")
                && custom.contains("but no signature of sha256:4776"),
            "{custom}"
        );
        let other = format!("sha256:{}", "0".repeat(64));
        assert!(check_verify_output(&bundle(SIGNATURE_PREDICATE, &other), DIGEST).is_err());
        assert!(check_verify_output("", DIGEST)
            .unwrap_err()
            .contains("no verified claims"));
        assert!(check_verify_output("[]", DIGEST)
            .unwrap_err()
            .contains("verified nothing"));
    }

    /// cosign 2.5 `verify-attestation --new-bundle-format` of a cosign 3 signature.
    const ENVELOPE: &str = r#"{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbeyJkaWdlc3QiOnsic2hhMjU2IjoiNDc3NjQ1ZjYzMzlmMmZmNzg2YjY2MTRlMTRhZDZiNTA5NGI5NDYxNDUzODFmNGM5M2RmZDA1ZjE3Y2I4MGNlOCJ9LCJhbm5vdGF0aW9ucyI6e319XSwicHJlZGljYXRlVHlwZSI6Imh0dHBzOi8vc2lnc3RvcmUuZGV2L2Nvc2lnbi9zaWduL3YxIiwicHJlZGljYXRlIjp7fX0=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEQCIAZvxCBJ2JhnCUi17dfyoM5/iVYl1Y6uyEj1XgUktI00AiASDu+XvgVSA4siJsG0iNYrPpHiy5wvnJhTeDunVtgchw=="}]}"#;

    #[test]
    fn verify_attestation_must_name_a_signature_of_the_digest() {
        check_attestation_output(&format!("{ENVELOPE}\n"), DIGEST).unwrap();
        let other = format!("sha256:{}", "1".repeat(64));
        let err = check_attestation_output(ENVELOPE, &other).unwrap_err();
        assert!(
            err.contains("\"https://sigstore.dev/cosign/sign/v1\" of sha256:4776"),
            "{err}"
        );
        assert!(check_attestation_output("{\"payload\":\"***\"}", DIGEST)
            .unwrap_err()
            .contains("not an in-toto statement"));
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64_decode("-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("a*"), None);
    }
}
