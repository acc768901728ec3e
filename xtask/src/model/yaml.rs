//! A JSON document written as block-style YAML, for the Kubernetes
//! manifests this project prints (admission policies), by yaml-rust2's
//! emitter: a string YAML could read as something else (`on`, `1.10`,
//! `null`, `*:ci-*`, `{{ ... }}`) or that holds a newline (a PEM key) is a
//! double-quoted scalar with escapes, any other is plain.

use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter};

/// The document as YAML: `---`, the document, a newline.
pub fn to_yaml(value: &Value) -> Result<String> {
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&node(value)?)
        .context("cannot write the document as YAML")?;
    out.push('\n');
    Ok(out)
}

fn node(value: &Value) -> Result<Yaml> {
    Ok(match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Yaml::Real(n.to_string()), Yaml::Integer),
        Value::String(s) => string(s)?,
        Value::Array(items) => Yaml::Array(items.iter().map(node).collect::<Result<_>>()?),
        Value::Object(map) => Yaml::Hash(
            map.iter()
                .map(|(k, v)| Ok((string(k)?, node(v)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// The emitter writes some control characters (BEL, ESC, DEL, C1) as they
/// are, which YAML readers refuse; no policy value holds one.
fn string(text: &str) -> Result<Yaml> {
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        bail!("{text:?} holds the control character {c:?}, which YAML cannot hold: remove it");
    }
    Ok(Yaml::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style_quoting_what_yaml_would_misread() {
        let document = json!({
            "apiVersion": "kyverno.io/v1",
            "metadata": {"name": "x", "annotations": {"policies.kyverno.io/title": "T"}},
            "spec": {
                "rules": [
                    {"name": "a", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}},
                    {"name": "b", "list": [[1, 2]], "empty": [], "none": {}}
                ],
                "background": false,
                "=(initContainers)": [{"image": "!*:ci-*"}],
                "misread": ["on", "1.10", "null", "true", "", " x", "{{ a }}", "a: b"],
                "pem": "-----BEGIN-----\nabc\n-----END-----\n"
            }
        });
        let text = to_yaml(&document).unwrap();
        let expected = r#"---
apiVersion: kyverno.io/v1
metadata:
  annotations:
    policies.kyverno.io/title: T
  name: x
spec:
  "=(initContainers)":
    - image: "!*:ci-*"
  background: false
  misread:
    - "on"
    - "1.10"
    - "null"
    - "true"
    - ""
    - " x"
    - "{{ a }}"
    - "a: b"
  pem: "-----BEGIN-----\nabc\n-----END-----\n"
  rules:
    - match:
        any:
          - resources:
              kinds:
                - Pod
      name: a
    - empty: []
      list:
        - - 1
          - 2
      name: b
      none: {}
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn a_value_yaml_cannot_hold_plain_is_refused() {
        for bad in [
            "bell\u{7}",
            "esc\u{1b}[0m",
            "del\u{7f}",
            "c1\u{85}",
            "nul\u{0}",
        ] {
            let err = to_yaml(&json!({"key": [bad]})).unwrap_err().to_string();
            assert!(err.contains("control character"), "{err}");
            let err = to_yaml(&json!({ bad: 1 })).unwrap_err().to_string();
            assert!(err.contains("control character"), "{err}");
        }
        let text = to_yaml(&json!({"key": "tab\tnewline\nreturn\r"})).unwrap();
        assert_eq!(text, "---\nkey: \"tab\\tnewline\\nreturn\\r\"\n");
    }
}
