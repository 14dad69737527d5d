//! `let` statements and user-defined functions.
//!
//! A `let` binds a name for the statements after it ([`Binding`]): a table (a translated relation), a list
//! (`dynamic([...])`), or a scalar expression translated where it is used (`ago()` needs the rows' event
//! time). A function (`let f = (a:string, b:int = 5) { …; result }`, `view () { … }`) is expanded where it
//! is called — `f(x)` in an expression, `f(x)` or `v` as a table, `T | invoke f(x)` — by translating its
//! body with its parameters bound to the arguments: a table argument as the relation it names, a scalar
//! argument as the expression written at the call, translated in the scope of the call (so names in it
//! mean what they meant there), a missing one as the parameter's default. The body sees the names of the
//! scope where the function was defined, as in KQL.

use std::collections::HashMap;
use std::rc::Rc;

use super::{Binding, Rel, Translator, expr::Sql};
use crate::kql::Refusal;
use crate::kql::ast::*;

/// The names a function body or an argument sees.
pub(super) type Scope = HashMap<String, Binding>;

/// How deeply function calls may nest (a call in a body is one more level).
const MAX_CALL_DEPTH: usize = 32;

/// What a function call stands for.
pub(super) enum Called {
    Scalar(Sql),
    Table(Rel),
}

impl Translator<'_> {
    pub(super) fn bind(&mut self, l: &LetStatement) -> Result<(), Refusal> {
        let name = l.name.name.clone();
        let binding = match &l.value {
            LetValue::Tabular(t) => Binding::Table(self.tabular(t)?),
            LetValue::Function(f) => {
                Binding::Function(Rc::new(f.clone()), Rc::new(self.lets.clone()))
            }
            LetValue::Expr(Expr::Name(id)) if self.names_table(&id.name) => {
                Binding::Table(self.source(&Source::Name(id.clone()))?)
            }
            LetValue::Expr(Expr::Call(c)) if self.is_table_function(&c.name.name) => {
                Binding::Table(self.source(&Source::Call(c.clone()))?)
            }
            LetValue::Expr(Expr::Literal {
                value: Literal::Dynamic(d),
                span,
            }) => match d.as_ref() {
                DynamicValue::Array(items) if !items.iter().any(super::expr::is_container) => {
                    Binding::List(
                        items
                            .iter()
                            .map(|i| self.dynamic_scalar(i, *span))
                            .collect::<Result<_, _>>()?,
                    )
                }
                DynamicValue::Array(_) | DynamicValue::Object(_) => Binding::Expr(Expr::Literal {
                    value: Literal::Dynamic(d.clone()),
                    span: *span,
                }),
                other => Binding::Scalar(self.dynamic_scalar(other, *span)?),
            },
            LetValue::Expr(Expr::Call(c)) if c.name.name == "materialize" && c.args.len() == 1 => {
                match &c.args[0] {
                    Expr::Tabular(t) => Binding::Table(self.tabular(t)?),
                    _ => {
                        return Err(self.refuse(
                            c.span,
                            "function materialize",
                            "materialize of a non-table",
                        ));
                    }
                }
            }
            // Translated where used: `ago()` / `now()` need the rows' event time.
            LetValue::Expr(e) => Binding::Expr(e.clone()),
        };
        self.lets.insert(name, binding);
        Ok(())
    }

    /// Whether `name` is a table here: a built-in table, a let-bound table, or a function without
    /// required parameters that returns one (a view).
    pub(super) fn names_table(&self, name: &str) -> bool {
        match self.lets.get(name) {
            Some(Binding::Table(_)) => true,
            Some(Binding::Function(f, _)) => {
                f.params.iter().all(|p| p.default.is_some()) && self.is_table_function(name)
            }
            Some(_) => false,
            None => self.tables.get(name).is_some(),
        }
    }

    /// Whether `name` is a function whose result is a table.
    pub(super) fn is_table_function(&self, name: &str) -> bool {
        let Some(Binding::Function(f, scope)) = self.lets.get(name) else {
            return false;
        };
        returns_table(f, scope, self)
    }

    /// A call of the user-defined function `c` names (the caller checked it is one): `piped` is the
    /// input of `invoke`, `rel` the rows a scalar call is evaluated on (None where a table is wanted).
    pub(super) fn call_function(
        &mut self,
        c: &FunctionCall,
        piped: Option<Rel>,
        rel: Option<&Rel>,
    ) -> Result<Called, Refusal> {
        let name = c.name.name.as_str();
        let Some(Binding::Function(def, scope)) = self.lets.get(name).cloned() else {
            return Err(self.refuse(
                c.name.span,
                &format!("function {name}"),
                &format!("`{name}` is not a function"),
            ));
        };
        if self.depth >= MAX_CALL_DEPTH {
            return Err(self.refuse(
                c.span,
                "let function",
                &format!("function calls nest deeper than {MAX_CALL_DEPTH} levels"),
            ));
        }
        let bindings = self.bind_arguments(c, &def, &scope, piped)?;
        let mut body_scope = (*scope).clone();
        body_scope.extend(bindings);
        let saved = std::mem::replace(&mut self.lets, body_scope);
        self.depth += 1;
        let result = self.function_body(c, &def, rel);
        self.depth -= 1;
        self.lets = saved;
        result
    }

    /// The body's `let`s, then its result: a value where `rel` is given, a table otherwise.
    fn function_body(
        &mut self,
        c: &FunctionCall,
        def: &FunctionDef,
        rel: Option<&Rel>,
    ) -> Result<Called, Refusal> {
        for l in &def.body {
            self.bind(l)?;
        }
        let name = &c.name.name;
        let table = match &def.result {
            Expr::Tabular(t) => Some(t.as_ref().clone()),
            Expr::Name(id) if self.names_table(&id.name) => Some(TabularExpr {
                source: Source::Name(id.clone()),
                operators: Vec::new(),
                span: id.span,
            }),
            Expr::Call(f) if self.is_table_function(&f.name.name) => Some(TabularExpr {
                source: Source::Call(f.clone()),
                operators: Vec::new(),
                span: f.span,
            }),
            _ => None,
        };
        match (table, rel) {
            (Some(t), None) => Ok(Called::Table(self.tabular(&t)?)),
            (None, Some(rel)) => Ok(Called::Scalar(self.expr(&def.result, rel)?)),
            (Some(_), Some(_)) => Err(self.refuse(
                c.span,
                "table as scalar",
                &format!("`{name}` returns a table, used here as a value"),
            )),
            (None, None) => Err(self.refuse(
                c.span,
                "scalar as table",
                &format!("`{name}` returns a value, used here as a table"),
            )),
        }
    }

    /// The parameters of `def` bound to the arguments of `c` (positional, then `name = value`), or to
    /// their defaults; `piped` fills the first parameter (`invoke`).
    fn bind_arguments(
        &mut self,
        c: &FunctionCall,
        def: &FunctionDef,
        scope: &Rc<Scope>,
        piped: Option<Rel>,
    ) -> Result<Vec<(String, Binding)>, Refusal> {
        let name = &c.name.name;
        let signature = || {
            def.params
                .iter()
                .map(|p| {
                    let ty = match &p.ty {
                        ParamType::Scalar(t) => t.name.clone(),
                        ParamType::Tabular(_) => "table".into(),
                    };
                    match p.default {
                        Some(_) => format!("{}:{ty} = …", p.name.name),
                        None => format!("{}:{ty}", p.name.name),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut given: Vec<Option<Arg>> = vec![None; def.params.len()];
        let mut next = 0;
        if let Some(rel) = piped {
            match def.params.first() {
                Some(Param {
                    ty: ParamType::Tabular(_),
                    ..
                }) => given[0] = Some(Arg::Piped(rel)),
                _ => {
                    return Err(self.refuse(
                        c.span,
                        "operator invoke",
                        &format!("`{name}` takes no table first, so `invoke` cannot pass it one"),
                    ));
                }
            }
            next = 1;
        }
        for a in &c.args {
            let (slot, value) = match a {
                Expr::NamedArg { name: n, value, .. } => {
                    match def.params.iter().position(|p| p.name.name == n.name) {
                        Some(i) => (i, value.as_ref()),
                        None => {
                            return Err(self.refuse(
                                n.span,
                                "let function",
                                &format!(
                                    "`{name}` has no parameter `{}` ({})",
                                    n.name,
                                    signature()
                                ),
                            ));
                        }
                    }
                }
                other => {
                    next += 1;
                    (next - 1, other)
                }
            };
            if slot >= def.params.len() || given[slot].is_some() {
                return Err(self.refuse(
                    a.span(),
                    "let function",
                    &format!(
                        "`{name}` takes {} arguments ({}), this one is too many",
                        def.params.len(),
                        signature()
                    ),
                ));
            }
            given[slot] = Some(Arg::Written(value.clone()));
        }
        let mut out = Vec::new();
        for (p, arg) in def.params.iter().zip(given) {
            let binding = match (arg, &p.ty) {
                (Some(Arg::Piped(rel)), ParamType::Tabular(schema)) => {
                    self.check_schema(c, p, schema.as_deref(), &rel)?;
                    Binding::Table(rel)
                }
                (Some(Arg::Written(e)), ParamType::Tabular(schema)) => {
                    let rel = self.table_argument(&e, p)?;
                    self.check_schema(c, p, schema.as_deref(), &rel)?;
                    Binding::Table(rel)
                }
                (Some(Arg::Written(e)), ParamType::Scalar(_)) => {
                    Binding::Arg(Rc::new(e), Rc::new(self.lets.clone()))
                }
                (None, ParamType::Scalar(_)) if p.default.is_some() => Binding::Arg(
                    Rc::new(p.default.clone().expect("checked")),
                    Rc::clone(scope),
                ),
                _ => {
                    return Err(self.refuse(
                        c.span,
                        "let function",
                        &format!(
                            "`{name}` needs a value for `{}` ({})",
                            p.name.name,
                            signature()
                        ),
                    ));
                }
            };
            out.push((p.name.name.clone(), binding));
        }
        Ok(out)
    }

    /// The relation a table argument names (a table, a let-bound table, a view, a tabular expression).
    fn table_argument(&mut self, e: &Expr, p: &Param) -> Result<Rel, Refusal> {
        match e {
            Expr::Tabular(t) => self.tabular(t),
            Expr::Name(id) if self.names_table(&id.name) => self.source(&Source::Name(id.clone())),
            Expr::Call(c) if self.is_table_function(&c.name.name) => {
                self.source(&Source::Call(c.clone()))
            }
            other => Err(self.refuse(
                other.span(),
                "let function",
                &format!("`{}` is a table parameter: pass a table", p.name.name),
            )),
        }
    }

    /// A table argument has the columns the parameter's schema names.
    fn check_schema(
        &self,
        c: &FunctionCall,
        p: &Param,
        schema: Option<&[ColumnDecl]>,
        rel: &Rel,
    ) -> Result<(), Refusal> {
        for col in schema.unwrap_or_default() {
            if rel.col(&col.name.name).is_none() {
                let mut r = self.unknown_column(&col.name.name, c.span, rel);
                r.message = format!(
                    "the table passed as `{}` of `{}` lacks a column it declares: {}",
                    p.name.name, c.name.name, r.message
                );
                return Err(r);
            }
        }
        Ok(())
    }

    /// A parameter's argument, translated in the scope of the call.
    pub(super) fn argument(
        &mut self,
        e: &Expr,
        scope: &Rc<Scope>,
        rel: &Rel,
    ) -> Result<Sql, Refusal> {
        let saved = std::mem::replace(&mut self.lets, (**scope).clone());
        let value = self.expr(e, rel);
        self.lets = saved;
        value
    }
}

/// An argument before it is bound.
#[derive(Clone)]
enum Arg {
    Piped(Rel),
    Written(Expr),
}

/// Whether a function's result is a table: a tabular expression, or a name or call that stands for one
/// in the function's own scope (its tabular parameters and body lets included).
fn returns_table(f: &FunctionDef, scope: &Scope, t: &Translator<'_>) -> bool {
    match &f.result {
        Expr::Tabular(_) => true,
        Expr::Name(id) | Expr::Call(FunctionCall { name: id, .. }) => {
            is_table_in(&id.name, f, scope, t)
        }
        _ => false,
    }
}

/// Whether `name`, seen from the body of `f`, is a table (or a function returning one).
fn is_table_in(name: &str, f: &FunctionDef, scope: &Scope, t: &Translator<'_>) -> bool {
    if let Some(p) = f.params.iter().find(|p| p.name.name == name) {
        return matches!(p.ty, ParamType::Tabular(_));
    }
    // The last body `let` of that name wins.
    if let Some(l) = f.body.iter().rev().find(|l| l.name.name == name) {
        return match &l.value {
            LetValue::Tabular(_) => true,
            LetValue::Function(g) => returns_table(g, scope, t),
            LetValue::Expr(Expr::Name(id) | Expr::Call(FunctionCall { name: id, .. })) => {
                id.name != name && is_table_in(&id.name, f, scope, t)
            }
            LetValue::Expr(_) => false,
        };
    }
    match scope.get(name) {
        Some(Binding::Table(_)) => true,
        Some(Binding::Function(g, s)) => returns_table(g, s, t),
        Some(_) => false,
        None => t.tables.get(name).is_some(),
    }
}
