//! YAML values in document order (`serde_json::Value` would sort mapping keys), as the parser reads rule
//! files, and the deep merge of Sigma 1 collections (`action: global` / `repeat`).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A YAML node with mapping order preserved (`serde_json::Value` would sort keys).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    pub(super) fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(items) => items
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Yaml::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub(super) fn without(self, key: &str) -> Yaml {
        match self {
            Yaml::Map(items) => Yaml::Map(
                items
                    .into_iter()
                    .filter(|(k, _)| !matches!(k, Yaml::Str(s) if s == key))
                    .collect(),
            ),
            other => other,
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Yaml::Null => "null",
            Yaml::Bool(_) => "boolean",
            Yaml::Int(_) | Yaml::Float(_) => "number",
            Yaml::Str(_) => "string",
            Yaml::Seq(_) => "list",
            Yaml::Map(_) => "mapping",
        }
    }

    /// The text of a scalar: strings as is, numbers in decimal (a float with an integral value as an
    /// integer, as pySigma), booleans `true`/`false`.
    pub(super) fn scalar_text(&self) -> Option<String> {
        match self {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => {
                Some(format!("{}", *f as i64))
            }
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Null | Yaml::Seq(_) | Yaml::Map(_) => None,
        }
    }

    pub(super) fn text_or_kind(&self) -> String {
        self.scalar_text()
            .unwrap_or_else(|| self.kind().to_string())
    }

    pub(super) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Yaml::Null => J::Null,
            Yaml::Bool(b) => J::Bool(*b),
            Yaml::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    J::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    J::from(v)
                } else {
                    serde_json::Number::from_f64(*i as f64).map_or(J::Null, J::Number)
                }
            }
            Yaml::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Yaml::Str(s) => J::String(s.clone()),
            Yaml::Seq(v) => J::Array(v.iter().map(Yaml::to_json).collect()),
            Yaml::Map(items) => J::Object(
                items
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.scalar_text().unwrap_or_else(|| k.kind().to_string()),
                            v.to_json(),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

/// Sigma 1 collections: `over` merged into `base`, mappings recursively, anything else replaced.
pub(super) fn deep_merge(base: Yaml, over: Yaml) -> Yaml {
    match (base, over) {
        (Yaml::Map(mut b), Yaml::Map(o)) => {
            for (k, v) in o {
                match b.iter().position(|(bk, _)| *bk == k) {
                    Some(i) => {
                        let old = std::mem::replace(&mut b[i].1, Yaml::Null);
                        b[i].1 = deep_merge(old, v);
                    }
                    None => b.push((k, v)),
                }
            }
            Yaml::Map(b)
        }
        (_, o) => o,
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Yaml, E> {
        Ok(i128::try_from(v)
            .map(Yaml::Int)
            .unwrap_or(Yaml::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Yaml, E> {
        Ok(Yaml::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some(item) = seq.next_element()? {
            v.push(item);
        }
        Ok(Yaml::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some((k, val)) = map.next_entry()? {
            v.push((k, val));
        }
        Ok(Yaml::Map(v))
    }
}
