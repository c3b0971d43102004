//! The workload's labels and the `selector: { matchLabels }` that picks the
//! policies applying to it.
//!
//! On Kubernetes the labels come from a downward API volume: one
//! `key="value"` line per label, the value quoted as Go's `%q` does
//! (kubelet writes them sorted and rewrites the file atomically).

use super::error::PolicyError;
use super::load::read_bounded;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Most labels accepted from a labels file or a selector.
pub const MAX_LABELS: usize = 1024;
/// Longest label name prefix (a DNS subdomain), as Kubernetes allows.
const MAX_PREFIX: usize = 253;
/// Longest label name (after the prefix) and label value.
const MAX_NAME: usize = 63;

/// A workload's labels (`app=web`, `version=v1`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Parses a downward API labels file's text (`key="value"` per line).
    pub fn parse_downward_api(text: &str) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let at = |problem: String| format!("line {}: {problem}", i + 1);
            let (key, quoted) = line
                .split_once('=')
                .ok_or_else(|| at("expected key=\"value\"".into()))?;
            let value = unquote(quoted).ok_or_else(|| {
                at(format!(
                    "value {quoted:?} is not a double-quoted string (Go %q)"
                ))
            })?;
            check_label(key, &value).map_err(at)?;
            if out.insert(key.to_owned(), value).is_some() {
                return Err(at(format!("label {key:?} appears twice")));
            }
            if out.len() > MAX_LABELS {
                return Err(format!("more than {MAX_LABELS} labels"));
            }
        }
        Ok(Self(out))
    }

    /// Reads a downward API labels file (bounded like a policy file).
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = read_bounded(path)?;
        Self::parse_downward_api(&text).map_err(|problem| PolicyError::Labels {
            origin: path.display().to_string(),
            problem,
        })
    }

    /// Builds labels from `key=value` pairs, checked like a labels file.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            check_label(&k, &v)?;
            if out.insert(k.clone(), v).is_some() {
                return Err(format!("label {k:?} appears twice"));
            }
            if out.len() > MAX_LABELS {
                return Err(format!("more than {MAX_LABELS} labels"));
            }
        }
        Ok(Self(out))
    }

    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True without labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{k}={v}")?;
        }
        Ok(())
    }
}

/// A compiled `selector: { matchLabels: {...} }`: every label must be
/// present with that value. An empty `matchLabels` selects every workload.
#[derive(Debug, Default)]
pub(crate) struct Selector {
    match_labels: Box<[(String, String)]>,
}

impl Selector {
    /// Checks the labels' syntax (Kubernetes label rules).
    pub(crate) fn new(match_labels: BTreeMap<String, String>) -> Result<Self, String> {
        if match_labels.len() > MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        for (k, v) in &match_labels {
            check_label(k, v)?;
        }
        Ok(Self {
            match_labels: match_labels.into_iter().collect(),
        })
    }

    /// True if the selector needs the workload's labels to decide.
    pub(crate) fn needs_labels(&self) -> bool {
        !self.match_labels.is_empty()
    }

    /// True if `labels` has every label of the selector.
    pub(crate) fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v.as_str()))
    }
}

/// Checks a label's name and value against Kubernetes' rules.
fn check_label(key: &str, value: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let dns = !p.is_empty()
            && p.len() <= MAX_PREFIX
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= MAX_NAME
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !dns {
            return Err(format!(
                "label name {key:?}: the prefix before '/' must be a lower-case DNS subdomain"
            ));
        }
    }
    if name.is_empty() || !label_word(name) {
        return Err(format!(
            "label name {key:?}: the name must be 1 to {MAX_NAME} characters of [A-Za-z0-9_.-], \
             starting and ending with a letter or digit"
        ));
    }
    if !value.is_empty() && !label_word(value) {
        return Err(format!(
            "label {key:?}: value {value:?} must be at most {MAX_NAME} characters of \
             [A-Za-z0-9_.-], starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn label_word(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    s.len() <= MAX_NAME
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Decodes a Go double-quoted string literal (`strconv.Quote`'s output).
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => {}
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        }
        let simple = match chars.next()? {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            'x' => Some(u8::try_from(hex(&mut chars, 2)?).ok()?),
            d @ '0'..='7' => {
                let rest = (0..2)
                    .map(|_| chars.next()?.to_digit(8))
                    .collect::<Option<Vec<_>>>()?;
                let v = rest
                    .iter()
                    .fold(d.to_digit(8)?, |acc, digit| acc * 8 + digit);
                Some(u8::try_from(v).ok()?)
            }
            'u' => {
                push_char(&mut out, hex(&mut chars, 4)?)?;
                None
            }
            'U' => {
                push_char(&mut out, hex(&mut chars, 8)?)?;
                None
            }
            _ => return None,
        };
        out.extend(simple);
    }
    String::from_utf8(out).ok()
}

fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> Option<u32> {
    (0..n).try_fold(0u32, |acc, _| Some(acc * 16 + chars.next()?.to_digit(16)?))
}

fn push_char(out: &mut Vec<u8>, code: u32) -> Option<()> {
    let c = char::from_u32(code)?;
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubelet_output() {
        let text = "app=\"web\"\napp.kubernetes.io/name=\"shop\"\npod-template-hash=\"5d9f\"\nempty=\"\"\n";
        let l = Labels::parse_downward_api(text).unwrap();
        assert_eq!(l.get("app"), Some("web"));
        assert_eq!(l.get("app.kubernetes.io/name"), Some("shop"));
        assert_eq!(l.get("empty"), Some(""));
        assert_eq!(l.len(), 4);
        assert_eq!(Labels::parse_downward_api("").unwrap(), Labels::default());
    }

    #[test]
    fn go_quoting() {
        assert_eq!(unquote(r#""a\"b\\c\n\t""#).unwrap(), "a\"b\\c\n\t");
        assert_eq!(unquote(r#""\x41\101\u00e9\U0001F600""#).unwrap(), "AAé😀");
        assert_eq!(unquote("\"é\"").unwrap(), "é");
        for bad in [
            "web",
            "\"web",
            "\"a\"b\"",
            r#""\q""#,
            r#""\x4""#,
            r#""\xff""#,
            r#""\ud800""#,
        ] {
            assert!(unquote(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn refuses_bad_files() {
        for bad in [
            "app web\n",
            "app=web\n",
            "app=\"web\"\napp=\"db\"\n",
            "-app=\"x\"\n",
            "Example.COM/app=\"x\"\n",
            "app=\"a b\"\n",
            "/app=\"x\"\n",
        ] {
            let e = Labels::parse_downward_api(bad).unwrap_err();
            assert!(e.starts_with("line "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn selector_matching() {
        let labels = Labels::from_pairs([("app", "web"), ("version", "v1")]).unwrap();
        let sel = |pairs: &[(&str, &str)]| {
            Selector::new(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
            .unwrap()
        };
        assert!(sel(&[("app", "web")]).matches(&labels));
        assert!(sel(&[("app", "web"), ("version", "v1")]).matches(&labels));
        assert!(!sel(&[("app", "web"), ("version", "v2")]).matches(&labels));
        assert!(!sel(&[("tier", "web")]).matches(&labels));
        assert!(sel(&[]).matches(&Labels::default()));
        assert!(!sel(&[]).needs_labels());
        assert!(Selector::new([("a b".to_owned(), "x".to_owned())].into()).is_err());
    }
}
