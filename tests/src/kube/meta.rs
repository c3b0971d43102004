//! The server-owned parts of `metadata` (uid, timestamps, names) and the
//! checks the real server makes on what a client sends.

use serde_json::{Map, Value};

use super::status::ApiError;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random version-4 UUID, the form the real server gives `metadata.uid`.
pub fn uid() -> String {
    let b: [u8; 16] = rand::random();
    let v = (u128::from_be_bytes(b) & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `generateName` plus five random characters (the real server's alphabet).
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

/// A DNS subdomain (RFC 1123): what object names must be; namespaces are
/// labels (no dots, 63 bytes).
pub fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let label_only = kind == "Namespace";
    let max = if label_only { 63 } else { 253 };
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name
            .chars()
            .all(|c| alnum(c) || c == '-' || (c == '.' && !label_only));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            kind,
            name,
            format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 name of at most {max} characters is required"
            ),
        ))
    }
}

/// The object's `metadata`, which must be an object.
pub fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// `metadata.labels` and `metadata.annotations` are maps of strings (the
/// real server fails to decode anything else).
pub fn check_string_maps(obj: &Value) -> Result<(), ApiError> {
    for field in ["labels", "annotations"] {
        match obj.pointer(&format!("/metadata/{field}")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "metadata.{field} must be a map of strings"
                )));
            }
        }
    }
    Ok(())
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}
