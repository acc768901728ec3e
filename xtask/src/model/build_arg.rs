//! A build argument as `--build-arg` gives it: `KEY=VALUE` for every
//! variant, `VARIANT:KEY=VALUE` for one (bases differ per vendor).

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BuildArg {
    /// The one variant it applies to; `None`: every variant.
    pub variant: Option<String>,
    /// Letters, digits and `_`.
    pub key: String,
    /// Anything, `=` and `:` included.
    pub value: String,
}

impl BuildArg {
    /// Whether it applies to `variant`.
    pub fn applies_to(&self, variant: &str) -> bool {
        self.variant.as_deref().is_none_or(|v| v == variant)
    }
}

impl FromStr for BuildArg {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<BuildArg> {
        let malformed = || {
            anyhow::anyhow!(
                "malformed build argument {text:?}: expected KEY=VALUE (every variant) or VARIANT:KEY=VALUE (one), \
                 with KEY made of letters, digits and '_'"
            )
        };
        let Some((name, value)) = text.split_once('=') else {
            return Err(malformed());
        };
        let (variant, key) = match name.split_once(':') {
            Some((variant, key)) => (Some(variant), key),
            None => (None, name),
        };
        let key_ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok || variant.is_some_and(str::is_empty) {
            return Err(malformed());
        }
        Ok(BuildArg {
            variant: variant.map(String::from),
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

impl fmt::Display for BuildArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(variant) = &self.variant {
            write!(f, "{variant}:")?;
        }
        write!(f, "{}={}", self.key, self.value)
    }
}

impl TryFrom<String> for BuildArg {
    type Error = anyhow::Error;
    fn try_from(text: String) -> Result<BuildArg> {
        text.parse()
    }
}

impl From<BuildArg> for String {
    fn from(arg: BuildArg) -> String {
        arg.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_round_trip() {
        for text in [
            "A=b=c",
            "KEY=",
            "ubi9:PRODUCTION_BASE=mirror.example:5000/ubi-micro:9@sha256:ab",
            "CI_BASE=x:y",
        ] {
            let arg: BuildArg = text.parse().unwrap();
            assert_eq!(arg.to_string(), text);
            let json = serde_json::to_string(&arg).unwrap();
            assert_eq!(serde_json::from_str::<BuildArg>(&json).unwrap(), arg);
        }
        let scoped: BuildArg = "ubi9:A=x:1".parse().unwrap();
        assert_eq!(
            (
                scoped.variant.as_deref(),
                scoped.key.as_str(),
                scoped.value.as_str()
            ),
            (Some("ubi9"), "A", "x:1")
        );
        assert!(scoped.applies_to("ubi9") && !scoped.applies_to("distroless"));
        let every: BuildArg = "A=x:1".parse().unwrap();
        assert_eq!(every.variant, None);
        assert!(every.applies_to("ubi9"));
    }

    #[test]
    fn malformed_build_args_say_the_expected_form() {
        for bad in ["novalue", "=x", ":A=x", "ubi9:=x", "A B=x", "a:b:C=x"] {
            let err = bad.parse::<BuildArg>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("malformed build argument {bad:?}"))
                    && err.contains("KEY=VALUE"),
                "{bad}: {err}"
            );
        }
    }
}
