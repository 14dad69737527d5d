//! Binding: the column each event field is read from (built-in, declared or automatic), the mapping entry a
//! rule's logsource resolves to, and a rule bound to columns, one [`BoundVariant`] per variant of its entry.

use std::collections::BTreeMap;

use super::file::check_field_name;
use super::{
    BoundRule, BoundVariant, Column, Entry, ExtraColumn, FIELD_PLACEHOLDER, Mapping, Narrowing,
};
use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::{Expr, Logsource, Pattern, SigmaRule, Test};

impl Mapping {
    /// The column an event field is read from. Total and deterministic: the same field always gives the same
    /// column, and distinct fields never share an automatic column.
    ///
    /// 1. `columns` names a built-in column for the field: that column.
    /// 2. `fields` declares the field: its column.
    /// 3. Otherwise an automatic column over `default_paths`, named `snake_case(field)` when the field is the
    ///    canonical (PascalCase) spelling of that name and the name is free (not a built-in column, a
    ///    `columns` target or a `fields` column), else `snake_case(field)__<fnv1a32(field) as 8 hex digits>`.
    ///    Plain names never contain `__`, so the two forms cannot meet.
    pub fn column_for(&self, field: &str, base_columns: &[&str]) -> Result<Column, RuleError> {
        check_field_name(field)
            .map_err(|m| RefusalKind::Field.error(format!("field {field:?}: {m}")))?;
        if let Some(c) = self.columns.get(field) {
            return Ok(Column::Builtin(c.clone()));
        }
        if let Some(c) = self.fields.get(field) {
            return Ok(Column::Extra(c.clone()));
        }
        let snake = snake_case(field);
        let taken = |name: &str| {
            base_columns.contains(&name)
                || self.columns.values().any(|c| c == name)
                || self.fields.values().any(|c| c.name == name)
        };
        let name = if !snake.is_empty() && pascal_case(&snake) == field && !taken(&snake) {
            snake
        } else {
            let stem = if snake.is_empty() {
                "field".to_string()
            } else {
                snake
            };
            format!("{stem}__{:08x}", fnv1a32(field.as_bytes()))
        };
        let paths = self
            .default_paths
            .iter()
            .map(|p| p.replace(FIELD_PLACEHOLDER, field))
            .collect();
        Ok(Column::Extra(ExtraColumn { name, paths }))
    }

    /// The mapping entry for a rule's logsource. Keys must be equal; a rule without `product` takes the
    /// product of the only entry with its category and service.
    fn entry_for(&self, ls: &Logsource) -> Result<&Entry, RuleError> {
        if ls.product.is_none() && ls.category.is_none() && ls.service.is_none() {
            return Err(RefusalKind::Metadata
                .error("logsource is empty (it needs a product, category or service)"));
        }
        let same =
            |e: &&Entry| e.logsource.category == ls.category && e.logsource.service == ls.service;
        let candidates: Vec<&Entry> = match &ls.product {
            Some(_) => self
                .entries
                .iter()
                .filter(|e| same(e) && e.logsource.product == ls.product)
                .collect(),
            None => self.entries.iter().filter(same).collect(),
        };
        match candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(RefusalKind::Logsource
                .error(format!("logsource {ls} is not mapped by {}", self.origin))),
            many => Err(RefusalKind::Logsource.error(format!(
                "logsource {ls} is ambiguous in {}: it lacks a product and {} entries match ({})",
                self.origin,
                many.len(),
                many.iter()
                    .map(|e| e.logsource.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }

    /// Binds a rule: its logsource's variants, each with its `when` condition and the rule's detection with
    /// field names replaced by column names (after the variant's renames). `base_columns` are the built-in
    /// schema's column names. Keyword tests pass through unchanged.
    pub fn bind(&self, rule: &SigmaRule, base_columns: &[&str]) -> Result<BoundRule, RuleError> {
        self.check_schema(base_columns)
            .map_err(|e| RefusalKind::Field.error(e.to_string()))?;
        let entry = self.entry_for(&rule.logsource)?;
        let mut extra: BTreeMap<String, ExtraColumn> = BTreeMap::new();
        let mut error: Option<RuleError> = None;
        let resolve = |field: &str,
                       extra: &mut BTreeMap<String, ExtraColumn>,
                       error: &mut Option<RuleError>|
         -> String {
            match self.column_for(field, base_columns) {
                Ok(Column::Builtin(name)) => name,
                Ok(Column::Extra(col)) => {
                    let name = col.name.clone();
                    extra.entry(name.clone()).or_insert(col);
                    name
                }
                Err(e) => {
                    error.get_or_insert(e);
                    String::new()
                }
            }
        };

        let mut variants = Vec::with_capacity(entry.variants.len());
        let mut narrowed = Vec::new();
        for v in &entry.variants {
            // A rule reading fields the variant's events never carry: those tests are unknown there.
            let mut detection = std::borrow::Cow::Borrowed(&rule.detection);
            if let Some(supplies) = &v.supplies {
                let (folded, unknown) = rule.detection.assume_unknown(&|f| supplies.contains(f));
                if !unknown.fields.is_empty() {
                    narrowed.push(Narrowing {
                        variant: describe_when(&v.when),
                        fields: unknown.fields,
                        in_filter: unknown.negated,
                        dropped: folded.is_none(),
                    });
                    match folded {
                        Some(e) => detection = std::borrow::Cow::Owned(e),
                        None => continue,
                    }
                }
            }
            let mut keys = self.conditions(&v.when, &mut |f| resolve(f, &mut extra, &mut error));
            let unless = self.conditions(&v.unless, &mut |f| resolve(f, &mut extra, &mut error));
            match unless.len() {
                0 => {}
                1 => keys.push(Expr::Not(Box::new(unless.into_iter().next().unwrap()))),
                _ => keys.push(Expr::Not(Box::new(Expr::And(unless)))),
            }
            let when = match keys.len() {
                0 => Expr::True,
                1 => keys.into_iter().next().unwrap(),
                _ => Expr::And(keys),
            };
            let detection = detection.map_fields(&mut |sigma_field: &str| {
                let event_field = v
                    .rename
                    .get(sigma_field)
                    .map(String::as_str)
                    .unwrap_or(sigma_field);
                resolve(event_field, &mut extra, &mut error)
            });
            variants.push(BoundVariant { when, detection });
        }
        if let Some(e) = error {
            return Err(e);
        }
        if variants.is_empty() {
            let fields: std::collections::BTreeSet<&String> =
                narrowed.iter().flat_map(|n| &n.fields).collect();
            return Err(RefusalKind::Field.error(format!(
                "no variant of logsource {} carries what the rule needs (fields {fields:?})",
                entry.logsource
            )));
        }
        let mut logsource = entry.logsource.clone();
        if logsource.product.is_none() {
            logsource.product = rule.logsource.product.clone();
        }
        Ok(BoundRule {
            logsource,
            variants,
            columns: extra.into_values().collect(),
            narrowed,
        })
    }
}

impl Mapping {
    /// One test per (event field, accepted values) of a `when`/`unless`: the field's column equals one of
    /// the values, compared as case-insensitive strings.
    fn conditions(
        &self,
        keys: &[(String, Vec<String>)],
        resolve: &mut dyn FnMut(&str) -> String,
    ) -> Vec<Expr> {
        keys.iter()
            .map(|(field, values)| {
                let column = resolve(field);
                let mut tests: Vec<Expr> = values
                    .iter()
                    .map(|value| Expr::Field {
                        field: column.clone(),
                        test: Test::Str {
                            pattern: Pattern::literal(value),
                            cased: false,
                        },
                    })
                    .collect();
                if tests.len() == 1 {
                    tests.pop().unwrap()
                } else {
                    Expr::Or(tests)
                }
            })
            .collect()
    }
}

/// `ImageLoaded` -> `image_loaded`, `EventID` -> `event_id`, `AttributeLDAPDisplayName` ->
/// `attribute_ldap_display_name`, `Provider_Name` -> `provider_name`, `param1` -> `param1`. Words break
/// before an upper-case letter that follows a lower-case letter or digit, before the last capital of a run
/// followed by a lower-case letter, and at any character other than an ASCII letter or digit.
pub(super) fn snake_case(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words.join("_")
}

/// The canonical spelling of a snake_case name: `object_type` -> `ObjectType`.
pub(super) fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// 32-bit FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `Channel=Security EventID=4688`: a variant as its `when` condition, for reports.
fn describe_when(when: &[(String, Vec<String>)]) -> String {
    if when.is_empty() {
        return "every event".to_string();
    }
    when.iter()
        .map(|(f, values)| format!("{f}={}", values.join("|")))
        .collect::<Vec<_>>()
        .join(" ")
}
