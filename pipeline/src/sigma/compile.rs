//! Compiling a loaded rule set for a schema: the columns the rules add to the schema (decided here and
//! nowhere else), keyword tests turned into tests of the values column, every rule into one
//! [`RuleSet`](crate::sigma::eval::RuleSet), and the correlations resolved against the compiled rules.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use crate::decode::EventSchema;
use crate::decode::schema::{ColumnType, SchemaError};
use crate::sigma::correlate::{BaseRule, Correlator};
use crate::sigma::correlation::CorrelationRule;
use crate::sigma::engine::{CONTEXT_COLUMNS, EngineRule, SigmaEngine};
use crate::sigma::error::RefusalKind;
use crate::sigma::eval::{RuleInput, RuleSet};
use crate::sigma::hunts::{correlation_hunt, rule_hunt};
use crate::sigma::ir::Expr;
use crate::sigma::keywords::expand_keywords;
use crate::sigma::load::{Loaded, SigmaRefusal};
use crate::sigma::mapping::{Column, ExtraColumn, Mapping};

/// The columns a loaded rule set needs beyond the base schema: the fields its detections read, and the
/// fields its correlations group by or count (which no detection may read).
pub fn added_columns(loaded: &Loaded, mapping: &Mapping, base: &[&str]) -> Vec<ExtraColumn> {
    let mut extra = loaded.extra_columns();
    for (c, _) in &loaded.correlations {
        let fields = c
            .group_by
            .iter()
            .chain(c.value_fields())
            .chain(c.aliases.values().flat_map(|per_rule| per_rule.values()));
        for f in fields {
            if let Ok(Column::Extra(x)) = mapping.column_for(f, base)
                && !extra.iter().any(|e| e.name == x.name)
            {
                extra.push(x);
            }
        }
    }
    extra
}

/// The schema a loaded rule set runs on: `base` with the columns its rules and correlations add and, when a
/// rule has keywords, the values column they search.
pub fn schema_for(
    loaded: &Loaded,
    mapping: &Mapping,
    base: &EventSchema,
) -> Result<EventSchema, SchemaError> {
    let names: Vec<&str> = base.columns.iter().map(|c| c.name.as_str()).collect();
    let schema =
        base.with_string_columns(added_columns(loaded, mapping, &names).into_iter().map(|c| {
            (
                c.name,
                c.paths,
                "Event field read by Sigma rules.".to_string(),
            )
        }))?;
    let keywords = loaded.rules.iter().any(|r| r.bound.has_keywords());
    Ok(if keywords {
        schema.with_values_column()
    } else {
        schema
    })
}

/// The rule's whole condition over columns: OR over variants of (logsource condition AND detection).
pub fn rule_expr(variants: &[(Expr, Expr)]) -> Expr {
    let parts: Vec<Expr> = variants
        .iter()
        .map(|(when, det)| match when {
            Expr::True => det.clone(),
            w => Expr::And(vec![w.clone(), det.clone()]),
        })
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().expect("one part")
    } else {
        Expr::Or(parts)
    }
}

/// The SQL a rule becomes, over the `events` table (non-text columns read as text, as the evaluator does).
pub fn rule_sql(expr: &Expr, schema: &EventSchema) -> String {
    let text_of = |name: &str| -> String {
        match schema.columns.iter().find(|c| c.name == name) {
            Some(c) if c.ty != ColumnType::String => format!("CAST({name} AS VARCHAR)"),
            _ => name.to_string(),
        }
    };
    let expr = expr.map_fields(&mut |f| text_of(f));
    crate::sigma::sql::rule_to_sql(&expr, "*")
}

impl SigmaEngine {
    /// Compiles the loaded rules for batches of `schema`: the base schema (`base_columns`, what the rules
    /// were bound against) with `loaded.extra_columns()` and the correlations' fields added.
    /// Rules that fail to compile and correlations that cannot be resolved are returned as refusals.
    /// The rules are compiled on up to `threads` threads.
    pub fn build(
        loaded: Loaded,
        mapping: &Mapping,
        base_columns: &[&str],
        schema: &EventSchema,
        threads: usize,
    ) -> (SigmaEngine, Vec<SigmaRefusal>) {
        let mut refusals = Vec::new();
        // Fields resolve against the base schema's columns, as when the rules were bound.
        let base = base_columns;
        let variants: Vec<Vec<(Expr, Expr)>> = loaded
            .rules
            .iter()
            .map(|r| {
                r.bound
                    .variants
                    .iter()
                    .map(|v| (v.when.clone(), expand_keywords(&v.detection)))
                    .collect()
            })
            .collect();
        let inputs: Vec<RuleInput> = variants
            .iter()
            .map(|v| RuleInput {
                variants: v.iter().map(|(w, d)| (w, d)).collect(),
            })
            .collect();
        let (set, mut errors) = RuleSet::compile_on(&inputs, threads);
        if schema.values_index.is_none() {
            for (r, error) in loaded.rules.iter().zip(errors.iter_mut()) {
                if error.is_none() && r.bound.has_keywords() {
                    *error = Some(RefusalKind::Unsupported.error(
                        "keywords search the values column, which this schema lacks (see \
                         `compile::schema_for`)",
                    ));
                }
            }
        }
        let column_of = |name: &str| schema.columns.iter().position(|c| c.name == name);

        // Correlations first: they decide which rules alert alone and which fields to extract.
        let base_rules: Vec<BaseRule> = loaded
            .rules
            .iter()
            .zip(&errors)
            .filter(|(_, e)| e.is_none())
            .map(|(r, _)| BaseRule {
                id: r.rule.id.clone(),
                name: r.rule.name.clone(),
            })
            .collect();
        let (correlator, correlations) =
            resolve_correlations(loaded.correlations, &base_rules, &mut refusals);

        let mut rules = Vec::with_capacity(loaded.rules.len());
        for ((r, error), variants) in loaded.rules.into_iter().zip(errors).zip(&variants) {
            if let Some(reason) = error {
                refusals.push(SigmaRefusal {
                    file: r.file.clone(),
                    title: Some(r.rule.title.clone()),
                    id: Some(r.rule.id.clone()),
                    reason,
                });
                rules.push(None);
                continue;
            }
            let mut show: Vec<usize> = CONTEXT_COLUMNS
                .iter()
                .filter_map(|c| column_of(c))
                .collect();
            let mut add = |name: &str| {
                if let Some(i) = column_of(name)
                    && !show.contains(&i)
                {
                    show.push(i);
                }
            };
            for v in &r.bound.variants {
                v.detection.visit_fields(&mut |f| add(f));
            }
            for f in &r.rule.fields {
                if let Ok(c) = mapping.column_for(f, base) {
                    add(c.name());
                }
            }
            let (alone, correlated) = match &correlator {
                Some(c) if c.references(&r.rule.id) => {
                    let columns = c
                        .fields_for(&r.rule.id)
                        .iter()
                        .map(|f| {
                            mapping
                                .column_for(f, base)
                                .ok()
                                .and_then(|c| column_of(c.name()))
                        })
                        .collect();
                    (
                        c.emits_alone(&r.rule.id),
                        Some((r.rule.id.clone(), columns)),
                    )
                }
                _ => (true, None),
            };
            let sql = rule_sql(&rule_expr(variants), schema);
            rules.push(Some(EngineRule {
                hunt: Arc::new(rule_hunt(&r.rule, r.file, sql)),
                show,
                alone,
                correlated,
            }));
        }
        let fingerprint = fingerprint(&rules, &correlations, schema);
        let max_span = correlations
            .iter()
            .map(|(c, _)| c.timespan.as_nanos() as i64)
            .max()
            .unwrap_or(0);
        (
            SigmaEngine {
                set,
                rules,
                correlations: correlations
                    .into_iter()
                    .map(|(c, file)| Arc::new(correlation_hunt(&c, file)))
                    .collect(),
                correlator,
                time_index: schema.time_index,
                max_span,
                held: VecDeque::new(),
                lateness: 0,
                fingerprint,
                base: base_rules,
                routes: Vec::new(),
            },
            refusals,
        )
    }
}

/// What a compiled set evaluates: each rule's id and SQL (its whole logic over columns, logsource
/// included), each correlation as parsed, and the schema's columns.
fn fingerprint(
    rules: &[Option<EngineRule>],
    correlations: &[(CorrelationRule, PathBuf)],
    schema: &EventSchema,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in rules.iter().flatten() {
        h.update(r.hunt.id.as_bytes());
        h.update([0]);
        h.update(r.hunt.sql.as_bytes());
        h.update([u8::from(r.alone)]);
    }
    for (c, _) in correlations {
        h.update(format!("{c:?}").as_bytes());
    }
    for c in &schema.columns {
        h.update(c.name.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolves correlations against the compiled rules, refusing the ones that cannot be (unknown rule,
/// cycle …) so that the rest still run.
fn resolve_correlations(
    mut remaining: Vec<(CorrelationRule, PathBuf)>,
    base: &[BaseRule],
    refusals: &mut Vec<SigmaRefusal>,
) -> (Option<Correlator>, Vec<(CorrelationRule, PathBuf)>) {
    loop {
        if remaining.is_empty() {
            return (None, remaining);
        }
        let rules: Vec<CorrelationRule> = remaining.iter().map(|(c, _)| c.clone()).collect();
        match Correlator::with_base_rules(rules, base) {
            Ok(c) => return (Some(c), remaining),
            Err(reason) => {
                // Drop the first correlation whose removal resolves the rest (or the first one).
                let culprit = (0..remaining.len())
                    .find(|&i| {
                        let others: Vec<CorrelationRule> = remaining
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != i)
                            .map(|(_, (c, _))| c.clone())
                            .collect();
                        Correlator::with_base_rules(others, base).is_ok()
                    })
                    .unwrap_or(0);
                let (c, file) = remaining.remove(culprit);
                refusals.push(SigmaRefusal {
                    file,
                    title: Some(c.title.clone()),
                    id: c.id.clone(),
                    reason: reason.context("correlation"),
                });
            }
        }
    }
}
