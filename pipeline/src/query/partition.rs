//! Where a windowed hunt's rows must meet: its partitioning key, read from the optimised plan.
//!
//! Scaled out (`scale.mode = "repartition"`), an instance sees only some of the events; a windowed hunt
//! that groups rows is right only if every row of one group reaches the same instance. The key is a set of
//! event columns such that two rows that can end up in one group (or one join match) always have equal
//! values in them: for each `GROUP BY`, the grouping expressions that are plain event columns (the window
//! columns left out: the window is the same on every instance); for each equi-join, the join columns that
//! are the same event column on both sides; for each `PARTITION BY` of a window function, its plain event
//! columns. The key is what every one of those has in common. A plan whose result rows each come from one
//! event row needs no key at all; a plan that relates rows regardless of any column (a global aggregate,
//! a `LIMIT`, a join on computed values) gets an empty key: all its rows meet in one place.

use std::collections::BTreeSet;

use datafusion::common::Column;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan};

/// Where the rows of a windowed hunt are evaluated when the pipeline is scaled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Each result row comes from one event row: evaluated where the event is decoded.
    RowLocal,
    /// Rows with equal values in these event columns (indices into the event schema) must meet.
    Keyed(Vec<usize>),
    /// Rows of any values may meet: all of the hunt's rows are evaluated in one place.
    Single,
}

impl Placement {
    /// For logs and `ghosthunt hunts`: the key's column names.
    pub fn describe(&self, names: &[&str]) -> String {
        match self {
            Placement::RowLocal => "row-local (no repartition)".to_string(),
            Placement::Single => "one partition (no key)".to_string(),
            Placement::Keyed(columns) => {
                let names: Vec<&str> = columns
                    .iter()
                    .map(|&i| names.get(i).copied().unwrap_or("?"))
                    .collect();
                format!("keyed by {}", names.join(", "))
            }
        }
    }
}

/// The placement of a plan over `events` whose first `event_columns` columns are event columns.
pub fn placement(plan: &LogicalPlan, event_columns: usize) -> Placement {
    let mut constraints: Vec<BTreeSet<usize>> = Vec::new();
    let mut global = false;
    plan.apply_with_subqueries(|node| {
        let resolved = |input: &LogicalPlan, exprs: &mut dyn Iterator<Item = &Expr>| {
            exprs
                .filter_map(|e| match e {
                    Expr::Column(c) => base_column(input, c, event_columns),
                    _ => None,
                })
                .collect::<BTreeSet<usize>>()
        };
        // Over constant rows only (`VALUES`), nothing relates events to one another.
        if !scans(node) {
            return Ok(TreeNodeRecursion::Continue);
        }
        match node {
            LogicalPlan::Aggregate(agg) => {
                if agg
                    .group_expr
                    .iter()
                    .any(|e| matches!(e, Expr::GroupingSet(_)))
                {
                    // ROLLUP / CUBE / GROUPING SETS add coarser groups than the listed columns.
                    global = true;
                }
                constraints.push(resolved(&agg.input, &mut agg.group_expr.iter()));
            }
            // A join with constant rows (`VALUES`) relates no events to one another.
            LogicalPlan::Join(join) if scans(&join.left) && scans(&join.right) => {
                let same: BTreeSet<usize> = join
                    .on
                    .iter()
                    .filter_map(|(l, r)| match (l, r) {
                        (Expr::Column(l), Expr::Column(r)) => {
                            let l = base_column(&join.left, l, event_columns)?;
                            (Some(l) == base_column(&join.right, r, event_columns)).then_some(l)
                        }
                        _ => None,
                    })
                    .collect();
                constraints.push(same);
            }
            LogicalPlan::Window(window) => {
                for e in &window.window_expr {
                    let mut e = e;
                    while let Expr::Alias(a) = e {
                        e = &a.expr;
                    }
                    match e {
                        Expr::WindowFunction(f) => constraints
                            .push(resolved(&window.input, &mut f.params.partition_by.iter())),
                        _ => global = true,
                    }
                }
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let columns: Vec<Expr> = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                constraints.push(resolved(input, &mut columns.iter()));
            }
            LogicalPlan::Distinct(Distinct::On(on)) => {
                constraints.push(resolved(&on.input, &mut on.on_expr.iter()));
            }
            LogicalPlan::Limit(_) => global = true,
            LogicalPlan::Sort(sort) if sort.fetch.is_some() => global = true,
            LogicalPlan::TableScan(scan) if scan.fetch.is_some() => global = true,
            // Not decorrelated into a join: it may read any row (of the events; constant rows relate
            // none).
            LogicalPlan::Subquery(sub) if scans(&sub.subquery) => global = true,
            LogicalPlan::RecursiveQuery(_) | LogicalPlan::Extension(_) => global = true,
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walking a plan cannot fail");
    if global {
        return Placement::Single;
    }
    let mut sets = constraints.into_iter();
    let Some(first) = sets.next() else {
        return Placement::RowLocal;
    };
    let key = sets.fold(first, |acc, s| acc.intersection(&s).copied().collect());
    match key.is_empty() {
        true => Placement::Single,
        false => Placement::Keyed(key.into_iter().collect()),
    }
}

/// What in `plan` relates the rows of different events — an aggregate, a window function, a join of
/// events with events, a `LIMIT` — if anything: an unwindowed hunt is evaluated on each micro-batch by
/// itself, so such a hunt would relate only the events that happen to share a batch, and its alerts
/// would change with the batch size and the events' arrival. Grouping that only deduplicates
/// (`DISTINCT`, `GROUP BY` without an aggregate) relates nothing: a row found again in a later batch is
/// the same alert (its id is its content).
pub fn relates_rows(plan: &LogicalPlan) -> Option<&'static str> {
    let mut found = None;
    plan.apply_with_subqueries(|node| {
        const LIMIT: &str = "a LIMIT (or a KQL take / top)";
        // Over constant rows only (`VALUES`), nothing relates events.
        if !scans(node) {
            return Ok(TreeNodeRecursion::Continue);
        }
        found = match node {
            LogicalPlan::Aggregate(agg) if !agg.aggr_expr.is_empty() => {
                Some("an aggregate (count(), sum(), … or a KQL summarize)")
            }
            LogicalPlan::Window(_) => Some("a window function (… OVER (…))"),
            LogicalPlan::Join(join) if scans(&join.left) && scans(&join.right) => {
                Some("a join of the events with the events (a JOIN, IN / EXISTS over them)")
            }
            // Not decorrelated into a join (a scalar subquery): it reads the batch's other rows.
            LogicalPlan::Subquery(_) => Some("a subquery over the events"),
            LogicalPlan::Limit(_) => Some(LIMIT),
            LogicalPlan::Sort(sort) if sort.fetch.is_some() => Some(LIMIT),
            LogicalPlan::TableScan(scan) if scan.fetch.is_some() => Some(LIMIT),
            LogicalPlan::RecursiveQuery(_) => Some("a recursive query"),
            _ => None,
        };
        Ok(match found {
            Some(_) => TreeNodeRecursion::Stop,
            None => TreeNodeRecursion::Continue,
        })
    })
    .expect("walking a plan cannot fail");
    found
}

/// Whether `plan` reads a table (the events or the alerts), not only constant rows (`VALUES`).
fn scans(plan: &LogicalPlan) -> bool {
    let mut scans = false;
    plan.apply_with_subqueries(|node| {
        scans = matches!(node, LogicalPlan::TableScan(_));
        Ok(match scans {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    })
    .expect("walking a plan cannot fail");
    scans
}

/// The event column (index) whose value `column` of `plan`'s output always has, if it is one unchanged:
/// followed down through projections (renames), aliases, filters, sorts, joins and grouping columns to
/// the scan of `events`. `None` for computed values and the window columns.
fn base_column(plan: &LogicalPlan, column: &Column, event_columns: usize) -> Option<usize> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let i = scan.projected_schema.index_of_column(column).ok()?;
            let source = scan.projection.as_ref().map_or(i, |p| p[i]);
            (source < event_columns).then_some(source)
        }
        LogicalPlan::Projection(p) => {
            let i = p.schema.index_of_column(column).ok()?;
            let mut e = &p.expr[i];
            while let Expr::Alias(a) = e {
                e = &a.expr;
            }
            match e {
                Expr::Column(c) => base_column(&p.input, c, event_columns),
                _ => None,
            }
        }
        LogicalPlan::SubqueryAlias(s) => {
            let i = s.schema.index_of_column(column).ok()?;
            let inner = Column::from(s.input.schema().qualified_field(i));
            base_column(&s.input, &inner, event_columns)
        }
        LogicalPlan::Aggregate(agg) => {
            let i = agg.schema.index_of_column(column).ok()?;
            match agg.group_expr.get(i)? {
                Expr::Column(c) => base_column(&agg.input, c, event_columns),
                _ => None,
            }
        }
        LogicalPlan::Join(join) => {
            if join.left.schema().index_of_column(column).is_ok() {
                base_column(&join.left, column, event_columns)
            } else {
                base_column(&join.right, column, event_columns)
            }
        }
        LogicalPlan::Window(w) => {
            let i = w.schema.index_of_column(column).ok()?;
            (i < w.input.schema().fields().len())
                .then(|| base_column(&w.input, column, event_columns))
                .flatten()
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => {
            base_column(plan.inputs()[0], column, event_columns)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::EventSchema;
    use crate::hunt::Hunt;
    use crate::hunt::Origin;

    async fn placed(window: &str, sql: &str) -> String {
        let text = format!(
            "/*\nid: t\ntitle: T\nhypothesis: h\nseverity: low\nwindow: {window}\nresponse: [r]\n*/\n{sql}"
        );
        let hunt = Hunt::parse(&text, "t", Origin::Builtin("t.sql")).expect("hunt parses");
        let schema = EventSchema::windows();
        let planned = crate::query::plan::plan(hunt, &schema)
            .await
            .expect("hunt plans");
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        planned.placement().describe(&names)
    }

    #[tokio::test]
    async fn grouping_columns_are_the_key_and_the_window_is_not() {
        assert_eq!(
            placed(
                "tumbling 5m",
                "SELECT window_start, ip_address, count(DISTINCT host) AS hosts FROM events \
                 WHERE event_id = 4625 GROUP BY window_start, window_end, ip_address HAVING count(DISTINCT host) > 3"
            )
            .await,
            "keyed by ip_address"
        );
        assert_eq!(
            placed(
                "tumbling 5m",
                "SELECT host, ip_address, count(*) AS n FROM events GROUP BY window_start, host, lower(target_user_name), ip_address"
            )
            .await,
            "keyed by host, ip_address",
            "a computed grouping value is left out; the plain columns still keep each group together"
        );
    }

    #[tokio::test]
    async fn renamed_columns_are_followed_to_the_event_column() {
        assert_eq!(
            placed(
                "tumbling 5m",
                "SELECT src, n FROM (SELECT ip_address AS src, count(*) AS n FROM events GROUP BY window_start, ip_address) t WHERE n > 3"
            )
            .await,
            "keyed by ip_address"
        );
    }

    #[tokio::test]
    async fn a_join_keeps_only_the_columns_equal_on_both_sides() {
        assert_eq!(
            placed(
                "tumbling 10m",
                "SELECT a.host, a.process_id, b.ip_address FROM events a JOIN events b \
                 ON a.host = b.host AND a.process_id = b.parent_process_id WHERE a.event_id = 1 AND b.event_id = 3"
            )
            .await,
            "keyed by host"
        );
        assert_eq!(
            placed(
                "tumbling 10m",
                "SELECT a.host FROM events a JOIN events b ON a.process_id = b.parent_process_id"
            )
            .await,
            "one partition (no key)",
            "no column is the same on both sides"
        );
    }

    #[tokio::test]
    async fn global_aggregates_and_limits_meet_in_one_place_and_row_hunts_stay_local() {
        assert_eq!(
            placed(
                "tumbling 5m",
                "SELECT count(*) AS n FROM events HAVING count(*) > 100"
            )
            .await,
            "one partition (no key)"
        );
        assert_eq!(
            placed(
                "tumbling 5m",
                "SELECT host, count(*) AS n FROM events GROUP BY host ORDER BY n DESC LIMIT 3"
            )
            .await,
            "one partition (no key)"
        );
        assert_eq!(
            placed(
                "tumbling 5m",
                "SELECT host, command_line FROM events WHERE event_id = 1"
            )
            .await,
            "row-local (no repartition)"
        );
        assert_eq!(
            placed(
                "tumbling 5m",
                "SELECT host, count(*) OVER (PARTITION BY host, \"user\") AS n FROM events"
            )
            .await,
            "keyed by host, user"
        );
    }
}
