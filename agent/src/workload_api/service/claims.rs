//! JSON claims as a `google.protobuf.Struct`.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::Map;

/// Converts a JSON object to a protobuf `Struct`.
pub(super) fn to_struct(obj: &Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: obj.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

fn to_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(to_struct(o)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_claims_convert() {
        let json =
            serde_json::json!({"sub": "spiffe://a/b", "exp": 5, "aud": ["x", "y"], "n": null});
        let s = to_struct(json.as_object().unwrap_or(&Map::new()));
        assert_eq!(
            s.fields["sub"].kind,
            Some(Kind::StringValue("spiffe://a/b".into()))
        );
        assert_eq!(s.fields["exp"].kind, Some(Kind::NumberValue(5.0)));
        assert_eq!(s.fields["n"].kind, Some(Kind::NullValue(0)));
        let Some(Kind::ListValue(l)) = &s.fields["aud"].kind else {
            panic!("aud is not a list")
        };
        assert_eq!(l.values.len(), 2);
    }
}
