//! Typed OCI documents (image-spec v1.1, and the Docker v2 media types that
//! share their shape): descriptors, platforms, image indexes, image
//! manifests and image configs. Only the fields this project reads are
//! modelled; everything else is ignored when parsing. The one attestation
//! filter lives here: BuildKit stores provenance and SBOMs as extra index
//! entries (`vnd.docker.reference.type: attestation-manifest`).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::model::names::Platform;

pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The annotation BuildKit puts on an index entry that is an attestation manifest.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The annotation naming the image manifest an attestation manifest describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// A descriptor's platform as the image spec writes it: an object of
/// `os`, `architecture` and `variant` (other fields are ignored), read into
/// the one [`Platform`] type, whatever its values.
mod platform_object {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Platform;

    #[derive(Serialize, Deserialize)]
    struct Object {
        os: String,
        architecture: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
    }

    pub fn serialize<S: Serializer>(
        platform: &Option<Platform>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        platform
            .as_ref()
            .map(|p| Object {
                os: p.os.clone(),
                architecture: p.arch.clone(),
                variant: p.variant.clone(),
            })
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Platform>, D::Error> {
        Ok(
            Option::<Object>::deserialize(deserializer)?.map(|o| Platform {
                os: o.os,
                arch: o.architecture,
                variant: o.variant,
            }),
        )
    }
}

/// A content descriptor: what a manifest, config or layer is, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    /// Required by the spec; read leniently (an absent one is empty).
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "platform_object"
    )]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// An attestation manifest BuildKit attached to an image, not an image.
    pub fn is_attestation(&self) -> bool {
        self.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some(ATTESTATION_MANIFEST)
    }

    /// `os/arch[/variant]`, or `unknown` for an entry without a platform.
    pub fn platform_name(&self) -> String {
        self.platform
            .as_ref()
            .map_or_else(|| "unknown".to_string(), ToString::to_string)
    }
}

/// An image index (or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// The platform images, attestation manifests left out.
    pub fn images(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter().filter(|m| !m.is_attestation())
    }

    /// The attestation manifests.
    pub fn attestations(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter().filter(|m| m.is_attestation())
    }

    /// The platforms of its images, in index order.
    pub fn platforms(&self) -> Vec<String> {
        self.images().map(Descriptor::platform_name).collect()
    }

    /// The image for `platform` (`linux/amd64`).
    pub fn image_for(&self, platform: &str) -> Option<&Descriptor> {
        self.images().find(|m| m.platform_name() == platform)
    }

    /// The attestation manifest describing the image `digest`.
    pub fn attestation_for(&self, digest: &str) -> Option<&Descriptor> {
        self.attestations()
            .find(|m| m.annotations.get(REFERENCE_DIGEST).map(String::as_str) == Some(digest))
    }
}

/// An image manifest: a config and layers (also the shape of BuildKit's
/// registry cache manifests and of attestation manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// What the registry stores for it: the config and every layer.
    pub fn stored_size(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// Either kind of manifest a reference can resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Index(Index),
    Manifest(ImageManifest),
}

impl Document {
    /// Parses a manifest by its media type, or by its shape when the media
    /// type is missing (it is optional in OCI).
    pub fn parse(bytes: &[u8]) -> Result<Document> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            media_type: String,
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes).context("a manifest that is not JSON")?;
        if INDEX_MEDIA_TYPES.contains(&probe.media_type.as_str()) || probe.manifests.is_some() {
            Ok(Document::Index(
                serde_json::from_slice(bytes).context("an image index of unexpected shape")?,
            ))
        } else {
            Ok(Document::Manifest(
                serde_json::from_slice(bytes).context("an image manifest of unexpected shape")?,
            ))
        }
    }

    pub fn as_index(&self) -> Option<&Index> {
        match self {
            Document::Index(index) => Some(index),
            Document::Manifest(_) => None,
        }
    }

    pub fn as_manifest(&self) -> Option<&ImageManifest> {
        match self {
            Document::Manifest(manifest) => Some(manifest),
            Document::Index(_) => None,
        }
    }
}

/// The runtime part of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

/// An image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: ContainerConfig,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig> {
        serde_json::from_slice(bytes).context("an image config of unexpected shape")
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// The OCI image layout at the root of an OCI archive (`index.json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Layout {
    pub manifests: Vec<Descriptor>,
}

/// `blobs/sha256/<hex>`: where a blob lives in an OCI layout.
pub fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn index_entries_skip_attestations() {
        let index = Document::parse(&bytes(json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "annotations": {"org.opencontainers.image.revision": "abc"},
            "manifests": [
                {"mediaType": "m", "digest": "sha256:1", "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "m", "digest": "sha256:2", "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"mediaType": "m", "digest": "sha256:3", "size": 1, "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": "sha256:1"}},
            ]
        })))
        .unwrap();
        let index = index.as_index().unwrap();
        assert_eq!(index.platforms(), ["linux/amd64", "linux/arm/v7"]);
        assert_eq!(index.attestations().count(), 1);
        assert_eq!(
            index.attestation_for("sha256:1").unwrap().digest,
            "sha256:3"
        );
        assert!(index.attestation_for("sha256:2").is_none());
        assert_eq!(index.image_for("linux/arm/v7").unwrap().digest, "sha256:2");
        assert_eq!(
            index.annotations["org.opencontainers.image.revision"],
            "abc"
        );
    }

    #[test]
    fn a_descriptor_platform_is_the_one_platform_type_read_as_an_object() {
        let object = json!({"os": "linux", "architecture": "arm", "variant": "v7"});
        let descriptor: Descriptor =
            serde_json::from_value(json!({"digest": "sha256:1", "platform": object})).unwrap();
        let platform = descriptor.platform.clone().unwrap();
        assert_eq!(platform, "linux/arm/v7".parse::<Platform>().unwrap());
        assert_eq!(serde_json::to_value(&platform).unwrap(), "linux/arm/v7");
        let written = serde_json::to_value(&descriptor).unwrap();
        assert_eq!(written["platform"], object);
        let bare: Descriptor = serde_json::from_value(json!({"digest": "sha256:2"})).unwrap();
        assert_eq!(bare.platform_name(), "unknown");
        assert!(serde_json::to_value(&bare)
            .unwrap()
            .get("platform")
            .is_none());
    }

    #[test]
    fn manifests_by_media_type_or_shape() {
        let manifest = json!({"config": {"mediaType": "c", "digest": "sha256:c", "size": 10},
            "layers": [{"mediaType": "l", "digest": "sha256:l", "size": 5}]});
        let parsed = Document::parse(&bytes(manifest)).unwrap();
        assert_eq!(parsed.as_manifest().unwrap().stored_size(), 15);
        let list = json!({"manifests": []});
        assert!(Document::parse(&bytes(list)).unwrap().as_index().is_some());
        assert!(Document::parse(b"not json").is_err());
        assert!(Document::parse(&bytes(json!({"schemaVersion": 2}))).is_err());
    }

    #[test]
    fn configs_and_labels() {
        let config = ImageConfig::parse(&bytes(json!({
            "created": "2024-01-01T00:00:00Z", "architecture": "arm64", "os": "linux",
            "config": {"Labels": {"dev.beacon.image.flavor": "ci"}, "User": "65532:65532"}
        })))
        .unwrap();
        assert_eq!(config.label("dev.beacon.image.flavor"), Some("ci"));
        assert_eq!(config.config.user.as_deref(), Some("65532:65532"));
        let bare = ImageConfig::parse(b"{}").unwrap();
        assert_eq!(bare.label("x"), None);
        assert_eq!(blob_path("sha256:ab"), "blobs/sha256/ab");
    }
}
