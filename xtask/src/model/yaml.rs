//! A JSON document written as block-style YAML, for the Kubernetes
//! manifests this project prints (admission policies). Every string is a
//! double-quoted scalar with JSON's escapes, which YAML reads the same way,
//! so no value can be misread (`on`, `1.10`, `*:ci-*`); keys are plain where
//! they are plain words.

use serde_json::Value;

/// The document as YAML, one `---`-less document ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
        // serde_json writes a string with JSON's escapes: a YAML double-quoted scalar.
        other => other.to_string(),
    }
}

fn is_collection(value: &Value) -> bool {
    matches!(value, Value::Object(map) if !map.is_empty())
        || matches!(value, Value::Array(items) if !items.is_empty())
}

fn key_text(key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if plain {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key_text(key));
        out.push(':');
        write_value(out, value, indent + 2);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first entry on the dash's line, the rest aligned under it.
                let mut first = true;
                for (key, value) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    out.push_str(&key_text(key));
                    out.push(':');
                    write_value(out, value, indent + 4);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_list(out, items, indent + 2);
            }
            scalar => {
                out.push(' ');
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

/// After `key:`: a scalar on the same line, a collection below it.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    if !is_collection(value) {
        out.push(' ');
        out.push_str(&scalar_text(value));
        out.push('\n');
        return;
    }
    out.push('\n');
    match value {
        Value::Object(map) => write_map(out, map, indent),
        Value::Array(items) => write_list(out, items, indent - 2),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style_with_quoted_strings() {
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
                "pem": "-----BEGIN-----\nabc\n-----END-----\n"
            }
        });
        let text = to_yaml(&document);
        let expected = r#"apiVersion: "kyverno.io/v1"
metadata:
  annotations:
    policies.kyverno.io/title: "T"
  name: "x"
spec:
  "=(initContainers)":
  - image: "!*:ci-*"
  background: false
  pem: "-----BEGIN-----\nabc\n-----END-----\n"
  rules:
  - match:
      any:
      - resources:
          kinds:
          - "Pod"
    name: "a"
  - empty: []
    list:
    -
      - 1
      - 2
    name: "b"
    none: {}
"#;
        assert_eq!(text, expected);
    }
}
