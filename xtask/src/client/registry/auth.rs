//! The credentials skopeo is given: the docker config (`$DOCKER_CONFIG`,
//! else `~/.docker/config.json`) and, for a `credsStore`, a private copy that
//! names the store as the host's credential helper. Only keys are read here,
//! never a secret.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::model::files;

/// The docker config credentials come from: `$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json`.
fn docker_config_file() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => Some(Path::new(&dir).join("config.json")),
        None => std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker/config.json")),
    }
}

fn docker_config() -> Option<Value> {
    let text = std::fs::read_to_string(docker_config_file()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// The auth file skopeo reads for `host`, when it must be given: the docker
/// config of `DOCKER_CONFIG` (skopeo reads `~/.docker/config.json` by
/// itself), or, where the config names a `credsStore`, a private copy of it
/// that also names that store as the host's `credHelpers` entry (skopeo
/// asks credential helpers, but not a `credsStore`). The secret stays
/// between skopeo and the helper; only the helper's name is copied.
pub(super) struct AuthFile {
    pub(super) path: PathBuf,
    pub(super) temporary: bool,
}

impl Drop for AuthFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub(super) fn auth_file(host: &str) -> Result<Option<AuthFile>> {
    let given = std::env::var_os("DOCKER_CONFIG").is_some_and(|d| !d.is_empty());
    let Some(mut config) = docker_config() else {
        return Ok(None);
    };
    let store = config["credsStore"].as_str().map(String::from);
    let helper_named = config["credHelpers"].get(host).is_some();
    let auth_named = config["auths"]
        .as_object()
        .is_some_and(|auths| auths.keys().any(|k| auth_key_host(k) == host));
    match store {
        Some(store) if !helper_named && !auth_named => {
            if !config["credHelpers"].is_object() {
                config["credHelpers"] = Value::Object(serde_json::Map::new());
            }
            config["credHelpers"][host] = Value::String(store);
            let path =
                std::env::temp_dir().join(format!("xtask-auth-{}.json", files::unique_suffix()));
            write_private(&path, &serde_json::to_vec(&config)?)?;
            Ok(Some(AuthFile {
                path,
                temporary: true,
            }))
        }
        _ if given => Ok(docker_config_file().map(|path| AuthFile {
            path,
            temporary: false,
        })),
        _ => Ok(None),
    }
}

/// `https://r.example/v1/` or `r.example`: the host of an `auths` key.
fn auth_key_host(key: &str) -> &str {
    key.trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or(key)
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Whether the docker config names credentials for `host` (an `auths`
/// entry, a `credHelpers` entry, or a `credsStore` for every host). Only
/// the keys are looked at, never a secret.
pub(super) fn configured_credentials(host: &str) -> bool {
    let Some(config) = docker_config() else {
        return false;
    };
    let names_host = |section: &str| {
        config[section]
            .as_object()
            .is_some_and(|entries| entries.keys().any(|key| auth_key_host(key) == host))
    };
    names_host("auths") || names_host("credHelpers") || config["credsStore"].is_string()
}
