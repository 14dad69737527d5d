//! Sigma rules as hunts: a front end that produces the same hunt type as `sql/`.
//!
//! The route of a rule: [`load`] reads the rule directories; [`parse`] turns each YAML document into a
//! [`ir::SigmaRule`] whose detection is an [`ir::Expr`] ([`condition`] is the condition grammar);
//! [`mapping`] binds it to columns through the logsource and field mapping (`sigma/windows.yml`);
//! `hunts` gives each rule its hunt metadata; [`compile`] decides the columns the rule set adds and
//! compiles every bound rule into one [`eval::RuleSet`] (per column, automata shared by all rules, each
//! scanning its rows once per batch); [`engine`] is the set at run time, an evaluator of the hunt
//! runtime, feeding matches of correlated rules to [`correlate`] ([`correlation`] parses correlation
//! rules). [`sql`] renders a rule as SQL for `ghosthunt sigma convert` (the `cidr_match` function it uses
//! is `query::udf`).

mod bits;
pub mod compile;
pub mod condition;
pub mod correlate;
pub mod correlation;
pub mod engine;
pub mod error;
pub mod eval;
pub mod hunts;
pub mod ir;
pub mod keywords;
mod literals;
pub mod load;
pub mod mapping;
pub mod parse;
pub mod route;
pub mod sql;

use std::path::Path;

use crate::decode::EventSchema;
use crate::settings::Settings;
use compile::{rule_expr, rule_sql};
use keywords::expand_keywords;
use load::{Loaded, SigmaRefusal};
use mapping::Mapping;

/// The SQL each rule of a file becomes (`ghosthunt sigma convert`), with a header naming the rule and its
/// logsource; correlation rules are described, not converted (they are stateful, not one query).
pub fn convert(
    text: &str,
    file: &Path,
    mapping: &Mapping,
    settings: &Settings,
    schema: &EventSchema,
) -> Vec<Result<String, SigmaRefusal>> {
    let base: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let mut loaded = Loaded::default();
    load::add_file(
        &mut loaded,
        text,
        file,
        mapping,
        &settings.sigma.placeholders,
        &base,
    );
    let mut out: Vec<Result<String, SigmaRefusal>> = loaded.refusals.drain(..).map(Err).collect();
    let Ok(schema) = compile::schema_for(&loaded, mapping, schema) else {
        return out;
    };
    for r in &loaded.rules {
        let variants: Vec<_> = r
            .bound
            .variants
            .iter()
            .map(|v| (v.when.clone(), expand_keywords(&v.detection)))
            .collect();
        let added: Vec<&str> = r.bound.columns.iter().map(|c| c.name.as_str()).collect();
        out.push(Ok(format!(
            "-- {} ({})\n-- logsource: {}{}\n{}",
            r.rule.title,
            r.rule.id,
            r.bound.logsource,
            if added.is_empty() {
                String::new()
            } else {
                format!("; columns added for this rule: {}", added.join(", "))
            },
            rule_sql(&rule_expr(&variants), &schema)
        )));
    }
    for (c, _) in &loaded.correlations {
        out.push(Ok(format!(
            "-- {} ({}): Sigma correlation {:?} over {}, group by [{}], timespan {}; evaluated by the \
             correlator over the base rules' matches, not as one query",
            c.title,
            c.id.as_deref().or(c.name.as_deref()).unwrap_or("no id"),
            c.kind,
            c.rules.join(", "),
            c.group_by.join(", "),
            humantime::format_duration(c.timespan)
        )));
    }
    out
}
