//! `kill_chain(list)`: the longest run of ATT&CK tactics in kill-chain order that a time-ordered list of
//! alerts shows, one tactic per alert — what the kill-chain incident rule counts.
//!
//! Each element of the list is one alert's tactics (the `tactics` column: one per line). The result is the
//! tactics of the longest chain whose stages strictly increase along the list (reconnaissance →
//! resource-development → initial-access → execution → persistence → privilege-escalation →
//! defense-evasion → credential-access → discovery → lateral-movement → collection →
//! command-and-control → exfiltration → impact), each alert giving at most one of them. `stealth` and
//! `defense-impairment` (ATT&CK v18's split of defense-evasion) share its stage; tactics outside the
//! enterprise chain (ICS, Mobile) are not stages. Among chains of equal length the result is the one
//! ending at the earliest stage (then the one found first), so it depends on the list only.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The enterprise kill chain, in order (stage = index).
const CHAIN: &[&str] = &[
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
];

/// The kill-chain stage of a tactic, if it is one.
pub fn stage(tactic: &str) -> Option<usize> {
    let t = tactic.trim();
    match t {
        "stealth" | "defense-impairment" => Some(6),
        _ => CHAIN.iter().position(|c| *c == t),
    }
}

/// The longest chain of strictly increasing stages taking at most one tactic from each alert, in order.
pub fn longest_chain<'a>(alerts: impl IntoIterator<Item = Vec<&'a str>>) -> Vec<&'static str> {
    // best[s]: the longest chain ending at stage s so far (stages, in order).
    let mut best: Vec<Option<Vec<usize>>> = vec![None; CHAIN.len()];
    for tactics in alerts {
        let mut stages: Vec<usize> = tactics.iter().filter_map(|t| stage(t)).collect();
        stages.sort_unstable();
        stages.dedup();
        // Computed from the chains before this alert, so that it adds one stage at most.
        let mut updates = Vec::with_capacity(stages.len());
        for &s in &stages {
            let prefix = best[..s]
                .iter()
                .flatten()
                .fold(None::<&Vec<usize>>, |acc, c| match acc {
                    Some(a) if a.len() >= c.len() => Some(a),
                    _ => Some(c),
                });
            let mut chain = prefix.cloned().unwrap_or_default();
            chain.push(s);
            if best[s].as_ref().is_none_or(|b| chain.len() > b.len()) {
                updates.push((s, chain));
            }
        }
        for (s, chain) in updates {
            best[s] = Some(chain);
        }
    }
    let mut longest: Option<&Vec<usize>> = None;
    for chain in best.iter().flatten() {
        if longest.is_none_or(|l| chain.len() > l.len()) {
            longest = Some(chain);
        }
    }
    longest.map_or_else(Vec::new, |c| c.iter().map(|&s| CHAIN[s]).collect())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KillChain {
    signature: Signature,
}

impl ScalarUDFImpl for KillChain {
    fn name(&self) -> &str {
        "kill_chain"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::List(_) | DataType::LargeList(_)] => Ok(list_type()),
            [other] => Err(DataFusionError::Plan(format!(
                "kill_chain takes the alerts' tactics as a list in time order, e.g. kill_chain(array_agg(tactics ORDER BY time)); not {other}"
            ))),
            _ => Err(DataFusionError::Plan(
                "kill_chain takes one argument: array_agg(tactics ORDER BY time)".into(),
            )),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let array = args.args[0].clone().into_array(rows)?;
        let list: ArrayRef = cast(
            &array,
            &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        )?;
        let list = list.as_list::<i32>();
        let mut out = ListBuilder::new(StringBuilder::new());
        for row in 0..list.len() {
            if list.is_null(row) {
                out.append_null();
                continue;
            }
            let values = list.value(row);
            let values = values.as_string::<i32>();
            let chain = longest_chain((0..values.len()).map(|i| match values.is_null(i) {
                true => Vec::new(),
                false => values.value(i).lines().collect(),
            }));
            for tactic in chain {
                out.values().append_value(tactic);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// The `kill_chain` scalar function (registered in every hunt session).
pub fn kill_chain() -> ScalarUDF {
    ScalarUDF::new_from_impl(KillChain {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(alerts: &[&[&str]]) -> Vec<&'static str> {
        longest_chain(alerts.iter().map(|a| a.to_vec()))
    }

    #[test]
    fn tactics_in_kill_chain_order_make_a_chain_one_per_alert() {
        assert_eq!(
            chain(&[
                &["execution", "defense-evasion"],
                &["credential-access"],
                &["lateral-movement", "execution"],
            ]),
            vec!["execution", "credential-access", "lateral-movement"]
        );
        // One alert gives one stage, however many tactics it lists.
        assert_eq!(
            chain(&[&["execution", "credential-access", "lateral-movement"]]).len(),
            1
        );
    }

    #[test]
    fn stages_out_of_order_do_not_lengthen_the_chain() {
        assert_eq!(
            chain(&[
                &["lateral-movement"],
                &["credential-access"],
                &["execution"]
            ])
            .len(),
            1
        );
        // The same stage twice counts once.
        assert_eq!(
            chain(&[&["execution"], &["execution"], &["credential-access"]]),
            vec!["execution", "credential-access"]
        );
        // A later, longer chain wins over an earlier, shorter one.
        assert_eq!(
            chain(&[
                &["impact"],
                &["initial-access"],
                &["execution"],
                &["discovery"],
            ]),
            vec!["initial-access", "execution", "discovery"]
        );
    }

    #[test]
    fn unknown_and_non_enterprise_tactics_are_not_stages() {
        assert_eq!(stage("stealth"), stage("defense-evasion"));
        assert_eq!(stage("inhibit-response-function"), None);
        assert!(chain(&[&["evasion"], &["bogus"]]).is_empty());
        assert!(chain(&[]).is_empty());
    }
}
