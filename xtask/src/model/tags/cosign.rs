//! cosign's tags of a digest: `sha256-<hex>.sig`, `.att`, `.sbom` (cosign 2),
//! and the OCI referrers tag schema's `sha256-<hex>` (cosign 3's Sigstore
//! bundles on a registry without the referrers API).

use std::fmt;

use crate::model::names;

/// What cosign stores beside a digest, as a tag `sha256-<hex><suffix>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CosignKind {
    Signature,
    Attestation,
    Sbom,
    /// `sha256-<hex>`, no suffix: the OCI referrers tag schema, an index of
    /// the manifests that refer to the digest (cosign 3's Sigstore bundles
    /// where the registry has no referrers API).
    Referrers,
}

impl CosignKind {
    fn suffix(self) -> &'static str {
        match self {
            CosignKind::Signature => ".sig",
            CosignKind::Attestation => ".att",
            CosignKind::Sbom => ".sbom",
            CosignKind::Referrers => "",
        }
    }
}

/// A cosign tag and the digest it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignTag {
    pub target: String,
    pub kind: CosignKind,
}

impl fmt::Display for CosignTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            self.target.replacen(':', "-", 1),
            self.kind.suffix()
        )
    }
}

impl CosignTag {
    pub fn parse(tag: &str) -> Option<CosignTag> {
        let rest = tag.strip_prefix("sha256-")?;
        [
            CosignKind::Signature,
            CosignKind::Attestation,
            CosignKind::Sbom,
            CosignKind::Referrers,
        ]
        .into_iter()
        .find_map(|kind| {
            let target = format!("sha256:{}", rest.strip_suffix(kind.suffix())?);
            names::validate_digest(&target)
                .is_ok()
                .then_some(CosignTag { target, kind })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_tags() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        for kind in [
            CosignKind::Signature,
            CosignKind::Attestation,
            CosignKind::Sbom,
            CosignKind::Referrers,
        ] {
            let tag = CosignTag {
                target: digest.clone(),
                kind,
            };
            assert_eq!(CosignTag::parse(&tag.to_string()), Some(tag));
        }
        let referrers = CosignTag::parse(&format!("sha256-{}", "ab".repeat(32))).unwrap();
        assert_eq!(
            (referrers.target, referrers.kind),
            (digest.clone(), CosignKind::Referrers)
        );
        assert_eq!(CosignTag::parse("sha256-ab.sig"), None);
        assert_eq!(CosignTag::parse("sha256-ab"), None);
        assert_eq!(
            CosignTag::parse(&format!("sha256-{}", "AB".repeat(32))),
            None
        );
        assert_eq!(
            CosignTag::parse(&format!("sha256-{}-x", "ab".repeat(32))),
            None
        );
        assert_eq!(
            CosignTag::parse(&format!("sha256-{}.txt", "ab".repeat(32))),
            None
        );
    }
}
