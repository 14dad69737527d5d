//! One record's bytes → the value of each column it fills, in one pass over the JSON.
//!
//! The record is deserialized with a serde visitor that carries the [`FieldMap`] state of where it is: each key
//! is looked up once; an unmapped key's value is skipped without being built (`IgnoredAny`); a mapped value is
//! offered to the columns whose paths end there. A column keeps the value of its highest-priority path seen so
//! far (path order is priority, whatever the document order), so the work is O(keys in the record), not
//! O(columns × paths). Strings are unescaped into one scratch buffer per record. Only after the whole record
//! parsed are the kept values coerced (an earlier path's wrong type does not matter if a better path is
//! present) and appended to the column builders, in column order — the first failing column names the dead
//! letter, as does a missing event time.
//!
//! When the schema has the values column (`schema::VALUES_COLUMN`, for Sigma keywords), the same walk also
//! appends every scalar value it passes — mapped or not, at any depth, in arrays too; never a key — to one
//! buffer, each value ended by `schema::VALUE_SEPARATOR`; unmapped values are then visited by [`Collect`]
//! instead of skipped.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::DeadLetterReason;
use super::columns::ColumnBuilder;
use super::fields::{FieldMap, ROOT, Terminal};
use super::json::{self, Cell, Found, Refusal, refuse};
use super::schema::{EventSchema, VALUE_SEPARATOR};

/// A value kept for a column, its strings as ranges of the scratch buffer.
#[derive(Debug, Clone, Copy)]
enum Raw {
    Str(u32, u32),
    /// The values column's text (`Staging::values`).
    Values,
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Object,
    Array,
    Json(u32, u32, bool),
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The record this slot was last filled for; older ones are empty.
    generation: u32,
    priority: u16,
    value: Raw,
}

/// Per-record state of the walk, reused across the records of a batch.
pub struct Staging {
    slots: Vec<Slot>,
    /// Columns filled by the current record.
    touched: Vec<u32>,
    generation: u32,
    scratch: String,
    /// Whether this walk collects every scalar value into `values`.
    collect: bool,
    values: String,
}

/// The JSON kind of a record's top-level value (only an object is an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

impl Staging {
    pub fn new(columns: usize) -> Staging {
        Staging {
            slots: vec![
                Slot {
                    generation: 0,
                    priority: 0,
                    value: Raw::Object,
                };
                columns
            ],
            touched: Vec::new(),
            generation: 0,
            scratch: String::new(),
            collect: false,
            values: String::new(),
        }
    }

    /// Walks one record, keeping each column's best value; refuses what is not a JSON object.
    pub fn walk(&mut self, map: &FieldMap, bytes: &[u8]) -> Result<(), Refusal> {
        self.generation += 1;
        self.touched.clear();
        self.scratch.clear();
        self.values.clear();
        self.collect = map.values_column().is_some();
        let text = std::str::from_utf8(bytes)
            .map_err(|e| refuse(DeadLetterReason::InvalidUtf8, format!("not UTF-8: {e}")))?;
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = ValueSeed {
            st: self,
            map,
            state: ROOT,
            offer: true,
        };
        let kind = seed
            .deserialize(&mut de)
            .and_then(|kind| de.end().map(|()| kind))
            .map_err(|e| refuse(DeadLetterReason::InvalidJson, format!("invalid JSON: {e}")))?;
        if kind != Kind::Object {
            return Err(refuse(
                DeadLetterReason::NotAnObject,
                format!("a JSON {} is not an event object", kind.as_str()),
            ));
        }
        if let Some(column) = map.values_column()
            && !self.values.is_empty()
        {
            let terminal = Terminal {
                column,
                priority: 0,
                wildcard: false,
                lenient: false,
            };
            self.offer(&[terminal], Raw::Values, Raw::Values);
        }
        Ok(())
    }

    /// Appends one scalar value to the values column's buffer (when collecting).
    fn note(&mut self, value: impl Scalar) {
        if self.collect {
            value.append_to(&mut self.values);
        }
    }

    /// Coerces the walked record's values and appends them as row `row`; returns its event time. On a
    /// refusal nothing of the record stays in the builders.
    pub fn commit(
        &mut self,
        schema: &EventSchema,
        builders: &mut [ColumnBuilder],
        row: u32,
    ) -> Result<i64, Refusal> {
        self.touched.sort_unstable();
        let time_index = schema.time_index as u32;
        let mut time = None;
        let mut result = Ok(());
        for &c in &self.touched {
            if c > time_index && time.is_none() {
                break;
            }
            let slot = self.slots[c as usize];
            let column = &schema.columns[c as usize];
            match json::coerce(column, slot.priority as usize, self.found(slot.value)) {
                Ok(Cell::Time(t)) if c == time_index => time = Some(t),
                Ok(_) if c == time_index => break,
                Ok(cell) => builders[c as usize].append(row, &cell),
                Err(refusal) => {
                    result = Err(refusal);
                    break;
                }
            }
        }
        let outcome = result.and_then(|()| time.ok_or_else(|| missing_time(schema)));
        match outcome {
            Ok(t) => builders[schema.time_index].append(row, &Cell::Time(t)),
            Err(_) => {
                for &c in &self.touched {
                    builders[c as usize].rollback(row);
                }
            }
        }
        outcome
    }

    fn found(&self, raw: Raw) -> Found<'_> {
        let text = |a: u32, b: u32| &self.scratch[a as usize..b as usize];
        match raw {
            Raw::Str(a, b) => Found::Str(text(a, b)),
            Raw::Values => Found::Str(&self.values),
            Raw::I64(i) => Found::I64(i),
            Raw::U64(u) => Found::U64(u),
            Raw::F64(f) => Found::F64(f),
            Raw::Bool(b) => Found::Bool(b),
            Raw::Object => Found::Object,
            Raw::Array => Found::Array,
            Raw::Json(a, b, array) => Found::Json {
                text: text(a, b),
                array,
            },
        }
    }

    /// Whether some terminal would take a value now (spares copying strings nobody keeps).
    fn wants(&self, terminals: &[Terminal]) -> bool {
        terminals.iter().any(|t| {
            let slot = &self.slots[t.column as usize];
            slot.generation != self.generation
                || t.priority < slot.priority
                || (t.priority == slot.priority && !t.wildcard)
        })
    }

    /// Offers a value to the columns whose paths end here: `lenient` to lenient columns, `strict` to others.
    fn offer(&mut self, terminals: &[Terminal], strict: Raw, lenient: Raw) {
        for t in terminals {
            let value = if t.lenient { lenient } else { strict };
            let slot = &mut self.slots[t.column as usize];
            if slot.generation != self.generation {
                *slot = Slot {
                    generation: self.generation,
                    priority: t.priority,
                    value,
                };
                self.touched.push(t.column);
            } else if t.priority < slot.priority || (t.priority == slot.priority && !t.wildcard) {
                slot.priority = t.priority;
                slot.value = value;
            }
        }
    }

    fn push(&mut self, s: &str) -> (u32, u32) {
        let start = self.scratch.len();
        self.scratch.push_str(s);
        let end = u32::try_from(self.scratch.len()).expect("records are far below 4 GiB");
        (start as u32, end)
    }
}

fn missing_time(schema: &EventSchema) -> Refusal {
    let column = &schema.columns[schema.time_index];
    refuse(
        DeadLetterReason::MissingTimestamp,
        format!(
            "no event time: none of the paths of `{}` is present ({})",
            column.name,
            column
                .paths
                .iter()
                .map(|p| p.join("."))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// Reads a value at one automaton state. With `offer` false (re-walking a captured object) the value itself
/// was already offered; only its children are walked.
struct ValueSeed<'s> {
    st: &'s mut Staging,
    map: &'s FieldMap,
    state: u32,
    offer: bool,
}

impl<'s> ValueSeed<'s> {
    fn scalar(self, value: Raw) {
        if self.offer {
            let terminals = self.map.state(self.state).terminals();
            self.st.offer(terminals, value, value);
        }
    }

    /// Lenient columns take the object or array as JSON text (keys sorted): build it (rare: the cold
    /// path), offer it, then walk the object's children from the built value.
    fn capture<E: de::Error>(self, value: Value) -> Result<Kind, E> {
        let (array, kind) = match value {
            Value::Array(_) => (true, Kind::Array),
            _ => (false, Kind::Object),
        };
        let (a, b) = self.st.push(&super::json::canonical_text(value.clone()));
        let state = self.map.state(self.state);
        let strict = if array { Raw::Array } else { Raw::Object };
        self.st
            .offer(state.terminals(), strict, Raw::Json(a, b, array));
        if self.st.collect && (array || !state.has_children()) {
            // Not walked again below: its values are collected from the built value.
            collect_value(&value, &mut self.st.values);
        }
        if !array && state.has_children() {
            ValueSeed {
                offer: false,
                ..self
            }
            .deserialize(&value)
            .map_err(E::custom)?;
        }
        Ok(kind)
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Kind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Kind;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Kind, E> {
        // null is "not present": the column's next path may still fill it.
        Ok(Kind::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        self.st.note(v);
        self.scalar(Raw::Bool(v));
        Ok(Kind::Boolean)
    }

    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        self.st.note(v);
        self.scalar(Raw::I64(v));
        Ok(Kind::Number)
    }

    fn visit_u64<E>(self, v: u64) -> Result<Kind, E> {
        self.st.note(v);
        self.scalar(Raw::U64(v));
        Ok(Kind::Number)
    }

    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        self.st.note(v);
        self.scalar(Raw::F64(v));
        Ok(Kind::Number)
    }

    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        self.st.note(v);
        let terminals = self.map.state(self.state).terminals();
        if self.offer && self.st.wants(terminals) {
            let (a, b) = self.st.push(v);
            self.st.offer(terminals, Raw::Str(a, b), Raw::Str(a, b));
        }
        Ok(Kind::String)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let state = self.map.state(self.state);
        if self.offer && state.lenient() {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Value>()? {
                items.push(item);
            }
            return self.capture(Value::Array(items));
        }
        // Paths do not go through arrays: an array is only ever a (wrong-typed) value.
        if self.offer {
            self.st.offer(state.terminals(), Raw::Array, Raw::Array);
        }
        if self.st.collect {
            while seq
                .next_element_seed(Collect(&mut self.st.values))?
                .is_some()
            {}
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(Kind::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut object: A) -> Result<Kind, A::Error> {
        let state = self.map.state(self.state);
        if self.offer && state.lenient() {
            let mut map = Map::new();
            while let Some((key, value)) = object.next_entry::<String, Value>()? {
                map.insert(key, value);
            }
            return self.capture(Value::Object(map));
        }
        let ValueSeed {
            st,
            map,
            state: id,
            offer,
        } = self;
        if offer {
            st.offer(state.terminals(), Raw::Object, Raw::Object);
        }
        if !state.has_children() {
            if st.collect {
                while object.next_key::<IgnoredAny>()?.is_some() {
                    object.next_value_seed(Collect(&mut st.values))?;
                }
            } else {
                while object.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            }
            return Ok(Kind::Object);
        }
        while let Some(next) = object.next_key_seed(KeySeed { map, state: id })? {
            match next {
                Some(child) => {
                    object.next_value_seed(ValueSeed {
                        st: &mut *st,
                        map,
                        state: child,
                        offer: true,
                    })?;
                }
                None if st.collect => {
                    object.next_value_seed(Collect(&mut st.values))?;
                }
                None => {
                    object.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Kind::Object)
    }
}

/// Looks an object key up in the automaton without allocating it.
struct KeySeed<'s> {
    map: &'s FieldMap,
    state: u32,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u32>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<u32>, E> {
        Ok(self.map.next(self.state, key))
    }
}

/// Appends every scalar value below a point of the record to the values buffer, building nothing.
struct Collect<'s>(&'s mut String);

impl Collect<'_> {
    fn push(self, value: impl Scalar) {
        value.append_to(self.0);
    }
}

/// A scalar JSON value as the values column holds it: its text, then the separator. Strings are copied
/// as they are (no formatting machinery: most values are strings).
trait Scalar {
    fn append_to(self, out: &mut String);
}

impl Scalar for &str {
    fn append_to(self, out: &mut String) {
        out.push_str(self);
        out.push(VALUE_SEPARATOR);
    }
}

impl Scalar for &String {
    fn append_to(self, out: &mut String) {
        self.as_str().append_to(out);
    }
}

macro_rules! display_scalar {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            fn append_to(self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{self}{VALUE_SEPARATOR}");
            }
        }
    )*};
}

display_scalar!(bool, i64, u64, f64, &bool, &serde_json::Number);

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.push(v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.push(v);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.push(v);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.push(v);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.push(v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut object: A) -> Result<(), A::Error> {
        while object.next_key::<IgnoredAny>()?.is_some() {
            object.next_value_seed(Collect(&mut *self.0))?;
        }
        Ok(())
    }
}

/// [`Collect`] over an already built value (the lenient columns' cold path).
fn collect_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::Bool(b) => Collect(out).push(b),
        Value::Number(n) => Collect(out).push(n),
        Value::String(s) => Collect(out).push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_value(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_value(v, out)),
    }
}
