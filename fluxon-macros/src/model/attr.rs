//! `#[model(...)]` on the struct and `#[field(...)]` on its fields.

use proc_macro2::Span;
use syn::{Attribute, Expr, Lit, LitStr};

use super::ast::Errors;

/// `#[model(...)]`.
#[derive(Default)]
pub struct ModelAttrs {
    pub table: Option<LitStr>,
    pub renamed_from: Option<LitStr>,
    pub authorized_user: Option<Span>,
    /// `validate = path`: a `fn(&Self, &mut ValidationErrors)` run before every write.
    pub validate: Option<syn::Path>,
    /// `unique(a, b)`, any number of times: sets of columns no two rows may share.
    pub unique: Vec<Vec<syn::Ident>>,
}

/// `on_delete = ...`.
#[derive(Clone, Copy)]
pub enum OnDelete {
    Cascade,
    Protect,
    SetNull,
    SetDefault,
    NoAction,
}

/// `#[field(...)]`, each with the span of its mention for error messages.
#[derive(Default)]
pub struct FieldAttrs {
    pub max_length: Option<(u32, Span)>,
    pub max_digits: Option<(u32, Span)>,
    pub decimal_places: Option<(u32, Span)>,
    pub unique: Option<Span>,
    pub primary_key: Option<Span>,
    pub auto: Option<Span>,
    pub default: Option<(String, Span)>,
    pub auto_now: Option<Span>,
    pub auto_now_add: Option<Span>,
    pub on_delete: Option<(OnDelete, Span)>,
    pub username: Option<Span>,
    pub renamed_from: Option<LitStr>,
    pub index: Option<Span>,
    /// `validate = path`: a `fn(&FieldType) -> Result<(), String>` run before every write.
    pub validate: Option<syn::Path>,
}

fn int(expr: &Expr, errors: &mut Errors) -> Option<u32> {
    if let Expr::Lit(lit) = expr {
        if let Lit::Int(int) = &lit.lit {
            match int.base10_parse::<u32>() {
                Ok(n) => return Some(n),
                Err(err) => errors.push(int.span(), err),
            }
            return None;
        }
    }
    errors.push(syn::spanned::Spanned::span(expr), "expected a whole number");
    None
}

/// An SQL literal for `default = ...`: strings quoted, numbers and booleans as they are.
fn sql_literal(expr: &Expr, errors: &mut Errors) -> Option<String> {
    let unary_minus = match expr {
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Neg(_)) => Some(&*unary.expr),
        _ => None,
    };
    let (lit, negative) = match (expr, unary_minus) {
        (_, Some(Expr::Lit(lit))) => (&lit.lit, true),
        (Expr::Lit(lit), None) => (&lit.lit, false),
        _ => {
            errors.push(
                syn::spanned::Spanned::span(expr),
                "default takes a literal: a string, a number or a bool",
            );
            return None;
        }
    };
    let sign = if negative { "-" } else { "" };
    match lit {
        Lit::Str(s) => Some(format!("'{}'", s.value().replace('\'', "''"))),
        Lit::Int(i) => Some(format!("{sign}{}", i.base10_digits())),
        Lit::Float(f) => Some(format!("{sign}{}", f.base10_digits())),
        Lit::Bool(b) if !negative => Some(if b.value { "1" } else { "0" }.to_owned()),
        other => {
            errors.push(other.span(), "default takes a string, a number or a bool");
            None
        }
    }
}

pub fn model_attrs(attrs: &[Attribute], errors: &mut Errors) -> ModelAttrs {
    let mut out = ModelAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("model")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                out.table = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("renamed_from") {
                out.renamed_from = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("authorized_user") {
                out.authorized_user = Some(meta.path.span_ident());
            } else if meta.path.is_ident("validate") {
                out.validate = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("unique") {
                let mut set = Vec::new();
                meta.parse_nested_meta(|column| {
                    match column.path.get_ident() {
                        Some(ident) => set.push(ident.clone()),
                        None => errors.push(column.path.span_ident(), "expected a field's name"),
                    }
                    Ok(())
                })?;
                out.unique.push(set);
            } else {
                errors.push(
                    meta.path.span_ident(),
                    "unknown #[model] argument; expected `table = \"...\"`, `renamed_from = \"...\"`, `authorized_user`, `validate = path` or `unique(field, field, ..)`",
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = result {
            errors.push_error(err);
        }
    }
    out
}

/// Consumes `= value` after an unknown argument, so it is reported once, not also as a syntax error.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    }
    Ok(())
}

trait SpanIdent {
    fn span_ident(&self) -> Span;
}

impl SpanIdent for syn::Path {
    fn span_ident(&self) -> Span {
        syn::spanned::Spanned::span(self)
    }
}

pub fn field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("field")) {
        let result = attr.parse_nested_meta(|meta| {
            let span = meta.path.span_ident();
            let name = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match name.as_str() {
                "max_length" | "max_digits" | "decimal_places" => {
                    let value: Expr = meta.value()?.parse()?;
                    if let Some(n) = int(&value, errors) {
                        let slot = match name.as_str() {
                            "max_length" => &mut out.max_length,
                            "max_digits" => &mut out.max_digits,
                            _ => &mut out.decimal_places,
                        };
                        *slot = Some((n, span));
                    }
                }
                "default" => {
                    let value: Expr = meta.value()?.parse()?;
                    if let Some(sql) = sql_literal(&value, errors) {
                        out.default = Some((sql, span));
                    }
                }
                "on_delete" => {
                    let value: syn::Ident = meta.value()?.parse()?;
                    let rule = match value.to_string().as_str() {
                        "cascade" => Some(OnDelete::Cascade),
                        "protect" => Some(OnDelete::Protect),
                        "set_null" => Some(OnDelete::SetNull),
                        "set_default" => Some(OnDelete::SetDefault),
                        "no_action" => Some(OnDelete::NoAction),
                        _ => {
                            errors.push(
                                value.span(),
                                "on_delete is one of cascade, protect, set_null, set_default, no_action",
                            );
                            None
                        }
                    };
                    out.on_delete = rule.map(|r| (r, span));
                }
                "renamed_from" => out.renamed_from = Some(meta.value()?.parse()?),
                "validate" => out.validate = Some(meta.value()?.parse()?),
                "unique" => out.unique = Some(span),
                "index" => out.index = Some(span),
                "primary_key" => out.primary_key = Some(span),
                "auto" => out.auto = Some(span),
                "auto_now" => out.auto_now = Some(span),
                "auto_now_add" => out.auto_now_add = Some(span),
                "username" => out.username = Some(span),
                _ => {
                    errors.push(
                        span,
                        "unknown #[field] argument; expected one of max_length, max_digits, decimal_places, unique, primary_key, auto, default, auto_now, auto_now_add, on_delete, username, renamed_from, index, validate",
                    );
                    skip_value(&meta)?;
                }
            }
            Ok(())
        });
        if let Err(err) = result {
            errors.push_error(err);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(text: &str) -> (Option<String>, bool) {
        let expr: Expr = syn::parse_str(text).expect("an expression");
        let mut errors = Errors::default();
        let sql = sql_literal(&expr, &mut errors);
        (sql, errors.check().is_err())
    }

    #[test]
    fn defaults_become_sql_literals_with_quotes_doubled() {
        assert_eq!(literal("\"it's\""), (Some("'it''s'".to_owned()), false));
        assert_eq!(literal("-12"), (Some("-12".to_owned()), false));
        assert_eq!(literal("2.5"), (Some("2.5".to_owned()), false));
        assert_eq!(literal("true"), (Some("1".to_owned()), false));
        assert_eq!(literal("-true"), (None, true), "a negative bool is refused");
        assert_eq!(literal("some_call()"), (None, true), "only literals");
    }

    #[test]
    fn every_unknown_field_argument_is_reported() {
        let field: syn::Field = syn::parse_quote! {
            #[field(max_lenght = 5, uniq)]
            name: String
        };
        let mut errors = Errors::default();
        let attrs = field_attrs(&field.attrs, &mut errors);
        assert!(attrs.max_length.is_none());
        let all: Vec<String> = errors
            .check()
            .expect_err("two typos")
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].starts_with("unknown #[field] argument"), "{all:?}");
    }
}
