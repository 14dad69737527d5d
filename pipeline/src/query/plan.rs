//! Planning a hunt once and running its physical plan on each batch or closed window.
//!
//! Each hunt has its own DataFusion session with one table, `events`, whose rows are whatever the pipeline
//! puts in the hunt's input slot before a run. The plan is made once at start; every run resets the plan's
//! state (`reset_plan_states`) and executes it again. From the optimised logical plan we also take what a
//! windowed hunt must keep: the columns its scans read and the row-level filters pushed into them.
//!
//! Read-only by construction: the text must be one SELECT (checked on the parsed statement), DDL, DML and
//! other statements are refused by `SQLOptions`, and the session knows no table but `events` and the
//! Defender / Sentinel views over it that the hunt names (`kql::tables`; the optimiser inlines them, so
//! the scan requirements below still see the `events` scan) — no file or URL tables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, TimestampNanosecondArray, new_null_array,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DataFusionError};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::utils::{conjunction, disjunction};
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, collect};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::partition::Placement;
use crate::decode::EventSchema;
use crate::decode::schema::timestamp_type;
use crate::hunt::{Hunt, HuntError, WindowSpec};

/// The table every hunt selects from.
pub const EVENTS_TABLE: &str = "events";
/// Columns added for windowed hunts (NULL for unwindowed ones).
pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";

/// The table incident rules select from: one row per alert (`EventSchema::alerts`).
pub const ALERTS_TABLE: &str = "alerts";

/// What a hunt selects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The decoded events (`events`, and the KQL tables over it).
    Events,
    /// The alerts the hunts raised (`alerts`): an incident rule.
    Alerts,
}

impl Input {
    pub fn table(self) -> &'static str {
        match self {
            Input::Events => EVENTS_TABLE,
            Input::Alerts => ALERTS_TABLE,
        }
    }
}

/// Whether a hunt's statement selects from `alerts` (an incident rule) or from the events. Both at once
/// is refused: alerts are evaluated after the events that raised them, on their own watermark.
fn input_of(ctx: &SessionContext, statement: &Statement) -> Result<Input, String> {
    let tables = ctx
        .state()
        .resolve_table_references(statement)
        .map_err(|e| plain(&e))?;
    let alerts = tables.iter().any(|t| t.table() == ALERTS_TABLE);
    let others = tables.iter().any(|t| t.table() != ALERTS_TABLE);
    match (alerts, others) {
        (true, true) => Err(
            "a hunt selects from `events` or from `alerts`, not both: incident rules read the alerts only".into(),
        ),
        (true, false) => Ok(Input::Alerts),
        _ => Ok(Input::Events),
    }
}

/// The rows of one run, shared between the pipeline and the plan's scan.
#[derive(Debug)]
struct InputSlot {
    schema: SchemaRef,
    batches: Mutex<Vec<RecordBatch>>,
}

impl PartitionStream for InputSlot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // Cloned, not taken: a hunt that scans `events` twice (a self-join) reads the rows twice.
        let batches = self.batches.lock().expect("input slot lock").clone();
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(batches.into_iter().map(Ok)),
        ))
    }
}

/// The `events` table of one hunt.
#[derive(Debug)]
struct EventsTable {
    slot: Arc<InputSlot>,
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.slot.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let slot: Arc<dyn PartitionStream> = self.slot.clone();
        Ok(Arc::new(StreamingTableExec::try_new(
            Arc::clone(&self.slot.schema),
            vec![slot],
            projection,
            Vec::new(),
            false,
            limit,
        )?))
    }

    /// Inexact: the optimiser keeps the filter above the scan and also records it on the scan, which is
    /// where we read a windowed hunt's row-level filter from.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// What an unwindowed hunt runs on for one batch (see [`PlannedHunt::unwindowed_input`]).
pub struct UnwindowedInput {
    /// The passing rows as a batch of the hunt's table.
    pub table: RecordBatch,
    /// Oldest and newest event time of those rows (ns).
    pub span: (i64, i64),
}

/// A hunt planned and ready to run.
pub struct PlannedHunt {
    pub hunt: Arc<Hunt>,
    /// The table it selects from: the events, or the alerts (an incident rule).
    pub input: Input,
    slot: Arc<InputSlot>,
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    /// Row-level filter over the columns of `used_columns` (in that order); `None` keeps every row.
    prefilter: Option<Arc<dyn PhysicalExpr>>,
    /// The same filter as a logical expression over unqualified event columns (pushed into a lake scan).
    row_filter: Option<Expr>,
    /// Event-schema columns the hunt reads (what windows keep).
    used_columns: Vec<usize>,
    event_schema: SchemaRef,
    /// Where its rows must meet when scaled out (windowed hunts).
    placement: Placement,
}

impl std::fmt::Debug for PlannedHunt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedHunt")
            .field("id", &self.hunt.id)
            .field("used_columns", &self.used_columns)
            .field("prefilter", &self.prefilter.as_ref().map(|p| p.to_string()))
            .finish()
    }
}

/// The schema of `events` as a hunt sees it: the event columns plus window_start and window_end.
pub fn table_schema(events: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = events.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(WINDOW_START, timestamp_type(), true));
    fields.push(Field::new(WINDOW_END, timestamp_type(), true));
    Arc::new(Schema::new(fields))
}

/// How deeply a hunt's SQL may nest (DataFusion's parser stops at 50): a hunting query's list of a hundred
/// `x has "…" or …` tests nests as deeply, and its translation more.
pub(crate) fn sql_nesting() -> datafusion::config::ConfigNonZeroUsize {
    datafusion::config::ConfigNonZeroUsize::try_new(400).expect("400 is not zero")
}

fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        // Hunts run concurrently with each other; one partition each keeps a plan simple to re-run.
        .with_target_partitions(1)
        .with_information_schema(false)
        .with_batch_size(8192);
    let options = config.options_mut();
    options.sql_parser.collect_spans = true;
    options.sql_parser.recursion_limit = sql_nesting();
    // Dynamic filters make a plan single-use (see `reset_plan_states`).
    options.optimizer.enable_dynamic_filter_pushdown = false;
    options.optimizer.enable_topk_dynamic_filter_pushdown = false;
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
    options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    let ctx = SessionContext::new_with_config(config);
    register_functions(&ctx);
    ctx
}

/// The Defender / Sentinel tables (views over `events`) that `sql` names. A view the schema cannot
/// support is left out: a query that reads it then fails on the unknown table, the others never notice.
pub(crate) async fn register_kql_views(ctx: &SessionContext, sql: &str) {
    for table in crate::kql::tables::Tables::builtin().mentioned_in(sql) {
        let ddl = format!("CREATE VIEW {} AS {}", table.view_name(), table.view_sql());
        if let Err(e) = ctx.sql(&ddl).await {
            tracing::debug!(table = %table.name, error = %e, "KQL table view not registered.");
        }
    }
}

/// The functions hunts may call beyond DataFusion's own (also in lake query sessions).
pub(crate) fn register_functions(ctx: &SessionContext) {
    // Converted Sigma rules (`ghosthunt sigma convert`) use it for the `cidr` modifier.
    ctx.register_udf(super::udf::cidr_match());
    // The KQL tables' RemoteIPType.
    ctx.register_udf(super::udf::ip_address_type());
    // Incident rules' kill-chain measure.
    ctx.register_udf(super::udf_chain::kill_chain());
    // Comparisons of lower(x) with constants, run in place (see `rewrite`).
    for test in [
        super::udf_match::LowerTest::Eq,
        super::udf_match::LowerTest::StartsWith,
        super::udf_match::LowerTest::EndsWith,
        super::udf_match::LowerTest::Contains,
    ] {
        ctx.register_udf(super::udf_match::lower_test(test));
    }
    ctx.register_udf(super::udf_match::regex_is_match());
    ctx.add_analyzer_rule(Arc::new(super::rewrite::CaseInsensitiveCompare::default()));
    // KQL's `has` / `has_cs` (translated KQL hunts).
    for term in [
        super::udf_match::Term::Whole,
        super::udf_match::Term::Prefix,
        super::udf_match::Term::Suffix,
    ] {
        ctx.register_udf(super::udf_match::kql_term(term, false));
        ctx.register_udf(super::udf_match::kql_term(term, true));
    }
    ctx.register_udf(super::udf_match::kql_has_any());
    // KQL's dynamic values and the other KQL functions DataFusion lacks.
    for f in super::udf_json::all() {
        ctx.register_udf(f);
    }
}

/// Plans a hunt against the event schema. Errors name the hunt file and the line.
pub async fn plan(hunt: Hunt, schema: &EventSchema) -> Result<PlannedHunt, HuntError> {
    let fail = |line: usize, reason: String| HuntError {
        origin: hunt.origin.to_string(),
        line,
        reason,
    };
    let sql_line = hunt.sql_line();
    let located = |e: DataFusionError| {
        let line = error_line(&e, &hunt.sql).unwrap_or(sql_line);
        fail(line, plain(&e))
    };

    let ctx = session();
    let dialect = ctx.state().config().options().sql_parser.dialect;
    let statement = ctx
        .state()
        .sql_to_statement(&hunt.sql, &dialect)
        .map_err(located)?;
    match &statement {
        Statement::Statement(s) if matches!(**s, SqlStatement::Query(_)) => {}
        _ => {
            return Err(fail(
                sql_line,
                "a hunt is one SELECT over `events` (or `alerts`): DDL, DML, COPY, EXPLAIN and other statements are not allowed".into(),
            ));
        }
    }
    let input = input_of(&ctx, &statement).map_err(|reason| fail(sql_line, reason))?;
    let alerts_schema;
    let schema = match input {
        Input::Events => schema,
        Input::Alerts => {
            alerts_schema = EventSchema::alerts();
            &alerts_schema
        }
    };
    let event_schema = Arc::clone(schema.arrow());
    let slot = Arc::new(InputSlot {
        schema: table_schema(&event_schema),
        batches: Mutex::new(Vec::new()),
    });
    ctx.register_table(
        input.table(),
        Arc::new(EventsTable {
            slot: Arc::clone(&slot),
        }),
    )
    .map_err(located)?;
    if input == Input::Events {
        register_kql_views(&ctx, &hunt.sql).await;
    }
    let state = ctx.state();
    let logical = state.statement_to_plan(statement).await.map_err(located)?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&logical)
        .map_err(located)?;
    let optimized = state.optimize(&logical).map_err(located)?;
    if hunt.window == WindowSpec::None
        && let Some(what) = super::partition::relates_rows(&optimized)
    {
        return Err(fail(
            sql_line,
            format!(
                "window: none evaluates the hunt on each micro-batch by itself: {what} would relate \
                 only the events that happen to share a batch, and its alerts would change with the \
                 batch size and the events' arrival. Give the hunt a window (`window: tumbling 5m`) \
                 to relate events over event time"
            ),
        ));
    }
    let (used_columns, filters) = scan_requirements(&optimized, event_schema.fields().len());
    let derived = super::partition::placement(&optimized, event_schema.fields().len());
    let placement = match hunt.partition_by.as_slice() {
        [] => derived,
        names => {
            let mut key = Vec::with_capacity(names.len());
            for name in names {
                match event_schema.index_of(name) {
                    Ok(i) => key.push(i),
                    Err(_) => {
                        return Err(fail(
                            sql_line,
                            format!("partition_by `{name}` is not an event column"),
                        ));
                    }
                }
            }
            key.sort_unstable();
            key.dedup();
            // Rows that meet in one group have equal values in the derived key's columns: a key of
            // some of them sends them to one instance; any other column would split a group. A hunt
            // whose rows may meet whatever their values (a global count, a LIMIT) has no such key.
            if derived == Placement::Single {
                return Err(fail(
                    sql_line,
                    "partition_by: the hunt relates rows whatever their values (a count over all \
                     rows, a LIMIT, a join on computed values), so they are evaluated in one place; \
                     no column can split them. Leave partition_by out, or group by plain columns"
                        .into(),
                ));
            }
            if let Placement::Keyed(meet) = &derived
                && let Some(&stray) = key.iter().find(|i| !meet.contains(i))
            {
                let names: Vec<&str> = event_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                return Err(fail(
                    sql_line,
                    format!(
                        "partition_by `{}` is not a column the hunt's rows meet on ({}): scaled out, \
                         the rows of one group would be counted on different instances. Name some of \
                         those columns, or leave partition_by out",
                        names[stray],
                        derived.describe(&names)
                    ),
                ));
            }
            Placement::Keyed(key)
        }
    };
    let row_filter = filters.clone().map(unqualified);
    let prefilter = match filters {
        Some(expr) => {
            // Over the columns the hunt reads only, so that nothing in it costs in proportion to the
            // schema's width (which grows with the Sigma rule set); its AND / OR evaluate their right
            // side on the rows the left side leaves open (`selective`).
            let used_schema = event_schema
                .project(&used_columns)
                .map_err(|e| located(e.into()))?;
            let df_schema = DFSchema::try_from_qualified_schema(input.table(), &used_schema)
                .map_err(located)?;
            let expr = state
                .create_physical_expr(expr, &df_schema)
                .map_err(located)?;
            Some(super::selective::selective(expr).map_err(located)?)
        }
        None => None,
    };
    let plan = state
        .create_physical_plan(&logical)
        .await
        .map_err(located)?;
    if let Some(entity) = &hunt.entity
        && plan.schema().field_with_name(entity).is_err()
    {
        return Err(fail(
            sql_line,
            format!("entity `{entity}` is not a column of the hunt's result"),
        ));
    }
    for column in hunt.suppress.iter().flat_map(|s| &s.by) {
        if plan.schema().field_with_name(column).is_err() {
            return Err(fail(
                sql_line,
                format!("suppress by `{column}`: not a column of the hunt's result"),
            ));
        }
    }
    // An unwindowed hunt's alert takes its time and its id from the row's `event_time`: without it, the
    // same row at two times is one alert id (a SIEM deduplicating on it keeps one), timed by its batch.
    if matches!(hunt.window, WindowSpec::None)
        && input == Input::Events
        && plan.schema().field_with_name("event_time").is_err()
    {
        tracing::warn!(hunt = %hunt.id, origin = %hunt.origin, "Unwindowed hunt selects no event_time: the same row at two times gives one alert id (a SIEM deduplicating on finding_info.uid keeps one), and its alerts take their batch's time span. Select event_time.");
    }
    Ok(PlannedHunt {
        hunt: Arc::new(hunt),
        input,
        slot,
        plan,
        task_ctx: ctx.task_ctx(),
        prefilter,
        row_filter,
        used_columns,
        event_schema,
        placement,
    })
}

/// `expr` with its column references stripped of their table (`events.host` → `host`).
fn unqualified(expr: Expr) -> Expr {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            datafusion::common::Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .expect("rewriting column references cannot fail")
}

/// The event columns the plan's scans read, and the row-level filter: for each scan the conjunction of the
/// filters pushed into it (those on event columns only), OR-ed across scans. `None` when some scan reads
/// rows unfiltered.
fn scan_requirements(plan: &LogicalPlan, event_columns: usize) -> (Vec<usize>, Option<Expr>) {
    let mut used = std::collections::BTreeSet::new();
    let mut per_scan: Vec<Option<Expr>> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            match &scan.projection {
                Some(p) => used.extend(p.iter().copied().filter(|&i| i < event_columns)),
                None => used.extend(0..event_columns),
            }
            let row_level: Vec<Expr> = scan
                .filters
                .iter()
                .filter(|f| {
                    f.column_refs()
                        .iter()
                        .all(|c| c.name != WINDOW_START && c.name != WINDOW_END)
                })
                .cloned()
                .collect();
            // Columns a pushed filter reads must be kept too, even if the projection drops them.
            for f in &row_level {
                for c in f.column_refs() {
                    if let Ok(i) = scan.source.schema().index_of(&c.name) {
                        used.insert(i);
                    }
                }
            }
            per_scan.push(conjunction(row_level));
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walking a plan cannot fail");
    let filter = if per_scan.iter().any(Option::is_none) {
        None
    } else {
        disjunction(per_scan.into_iter().flatten())
    };
    (used.into_iter().collect(), filter)
}

impl PlannedHunt {
    /// What the hunt evaluates, over which columns: its whole file text and the name and type of every
    /// column it reads. Equal fingerprints mean state kept for one is valid for the other.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.hunt.sql.as_bytes());
        for &i in &self.used_columns {
            let field = self.event_schema.field(i);
            h.update([0]);
            h.update(i.to_be_bytes());
            h.update(field.name().as_bytes());
            h.update(field.data_type().to_string().as_bytes());
        }
        let d = h.finalize();
        d[..12].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The rows the hunt can use at all, as a logical expression over unqualified event columns
    /// (`None`: every row); what a lake scan for a retro-hunt pushes down.
    pub fn row_filter(&self) -> Option<&Expr> {
        self.row_filter.as_ref()
    }

    /// The columns of its result rows.
    pub fn result_schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// Where its rows must meet when the pipeline is scaled out.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Event-schema columns a window must keep for this hunt.
    pub fn used_columns(&self) -> &[usize] {
        &self.used_columns
    }

    /// The columns a windowed hunt's rows travel with when repartitioned: those it reads and event time.
    pub fn routed_columns(&self, time_index: usize) -> Vec<usize> {
        let mut columns = self.used_columns.clone();
        if let Err(at) = columns.binary_search(&time_index) {
            columns.insert(at, time_index);
        }
        columns
    }

    /// Which rows of a decoded batch can matter to this hunt; `None` when every row can. `known`: the
    /// hunt's row filter already answered for the batch (see [`crate::runtime::HuntMasks`]).
    pub fn prefilter_mask(
        &self,
        batch: &RecordBatch,
        known: Option<&BooleanArray>,
    ) -> Result<Option<BooleanArray>, DataFusionError> {
        let Some(expr) = &self.prefilter else {
            return Ok(None);
        };
        if let Some(mask) = known.filter(|m| m.len() == batch.num_rows()) {
            return Ok(Some(mask.clone()));
        }
        let used = batch.project(&self.used_columns)?;
        let mask = expr.evaluate(&used)?.into_array(batch.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Internal("hunt filter is not boolean".into()))?;
        Ok(Some(mask.clone()))
    }

    /// What an unwindowed hunt runs on: the rows of a decoded batch that pass its filter, with only the
    /// columns it reads (plus event time), as a batch of its table; and the oldest and newest event time
    /// of those rows. `None` when no row passes. Only the columns the hunt reads are filtered (copied),
    /// so the cost does not grow with the schema's width.
    pub fn unwindowed_input(
        &self,
        batch: &RecordBatch,
        time_index: usize,
        known: Option<&BooleanArray>,
    ) -> Result<Option<UnwindowedInput>, DataFusionError> {
        let columns = self.routed_columns(time_index);
        let projected = batch.project(&columns)?;
        let rows = match self.prefilter_mask(batch, known)? {
            None => projected,
            Some(mask) => filter_record_batch(&projected, &mask)?,
        };
        if rows.num_rows() == 0 {
            return Ok(None);
        }
        let at = columns.binary_search(&time_index).expect("inserted above");
        let times = rows
            .column(at)
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
        let span = (
            datafusion::arrow::compute::min(times).unwrap_or_default(),
            datafusion::arrow::compute::max(times).unwrap_or_default(),
        );
        Ok(Some(UnwindowedInput {
            table: self.table_batch(&rows, &columns, None)?,
            span,
        }))
    }

    /// Builds a batch of the hunt's table from `batch`, whose columns are `columns` of the event schema;
    /// missing columns are NULL (the plan does not read them), window columns are the given bounds.
    pub fn table_batch(
        &self,
        batch: &RecordBatch,
        columns: &[usize],
        window: Option<(i64, i64)>,
    ) -> Result<RecordBatch, DataFusionError> {
        let rows = batch.num_rows();
        let table = &self.slot.schema;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(table.fields().len());
        for (i, field) in self.event_schema.fields().iter().enumerate() {
            match columns.iter().position(|&c| c == i) {
                Some(j) => arrays.push(Arc::clone(batch.column(j))),
                None => arrays.push(null_column(field.data_type(), rows)),
            }
        }
        for bound in [window.map(|w| w.0), window.map(|w| w.1)] {
            let array: ArrayRef = match bound {
                Some(t) => Arc::new(
                    TimestampNanosecondArray::from(vec![t; rows])
                        .with_timezone(crate::decode::schema::UTC),
                ),
                None => null_column(&timestamp_type(), rows),
            };
            arrays.push(array);
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(table),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }

    /// Runs the plan over `input` (batches of the hunt's table) and returns the result rows.
    pub async fn run(&self, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, DataFusionError> {
        *self.slot.batches.lock().expect("input slot lock") = input;
        let result = match reset_plan_states(Arc::clone(&self.plan)) {
            Ok(plan) => collect(plan, Arc::clone(&self.task_ctx)).await,
            Err(e) => Err(e),
        };
        self.slot.batches.lock().expect("input slot lock").clear();
        result
    }
}

/// A column of `rows` NULLs. Columns a hunt does not read are all NULL in its table; one array per type,
/// grown as needed and sliced, serves every hunt and batch instead of a new allocation per column per batch
/// (the schema grows by the columns Sigma rules read, so that cost would grow with the rule set).
fn null_column(data_type: &DataType, rows: usize) -> ArrayRef {
    static NULLS: std::sync::LazyLock<Mutex<HashMap<DataType, ArrayRef>>> =
        std::sync::LazyLock::new(Default::default);
    let mut nulls = NULLS.lock().expect("null column cache lock");
    let cached = nulls
        .entry(data_type.clone())
        .or_insert_with(|| new_null_array(data_type, 0));
    if cached.len() < rows {
        *cached = new_null_array(data_type, rows.next_power_of_two());
    }
    cached.slice(0, rows)
}

/// The line of a DataFusion error: from its diagnostic span, a parser message (`at Line: 3`), or the
/// first occurrence of the unknown name it reports.
fn error_line(e: &DataFusionError, sql: &str) -> Option<usize> {
    for inner in e.iter() {
        if let Some(span) = inner.diagnostic().and_then(|d| d.span)
            && span.start.line > 0
        {
            return Some(span.start.line as usize);
        }
    }
    let text = e.to_string();
    if let Some(at) = text.find("Line: ") {
        let digits: String = text[at + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(line) = digits.parse() {
            return Some(line);
        }
    }
    for marker in ["No field named ", "table '", "Invalid function '"] {
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            let name: String = rest
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let name = name.rsplit('.').next().unwrap_or(&name).to_string();
            if !name.is_empty() {
                let header_end = sql.find("*/").map_or(0, |i| i + 2);
                if let Some(pos) = sql[header_end..].find(&name) {
                    return Some(crate::hunt::line_of(sql, header_end + pos));
                }
            }
        }
    }
    None
}

/// The error without DataFusion's nested context prefixes, on one line.
fn plain(e: &DataFusionError) -> String {
    if is_several_statements(e) {
        return "one SELECT per hunt: the text holds several statements (separated by `;`)".into();
    }
    let mut inner = e.iter().last().unwrap_or(e);
    // An optimizer rule's failure names the rule, not the cause: the cause is inside.
    while let DataFusionError::Context(_, cause) = inner {
        inner = cause;
    }
    let text = inner.to_string();
    // A regex's parse error points at the pattern over a few lines: kept, on one.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect();
    lines.join(" ")
}

/// DataFusion's refusal of a text holding more than one statement.
pub fn is_several_statements(e: &DataFusionError) -> bool {
    matches!(e, DataFusionError::NotImplemented(m) if m.contains("single SQL statement"))
}
