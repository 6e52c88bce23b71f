//! Checks a parsed model; every problem is reported, each on the attribute or field at fault.

use syn::spanned::Spanned;

use super::ast::{base_name, option_inner, Errors, Model, Shape};
use super::attr::OnDelete;

pub fn check(model: &Model, errors: &mut Errors) {
    for set in &model.attrs.unique {
        if set.len() < 2 {
            let span = set
                .first()
                .map_or_else(proc_macro2::Span::call_site, |i| i.span());
            errors.push(
                span,
                "unique(..) names two or more fields; for one, write #[field(unique)] on it",
            );
        }
        for (n, name) in set.iter().enumerate() {
            if !model.columns().any(|f| f.ident == *name) {
                errors.push(
                    name.span(),
                    format!("no column named `{name}` in this model"),
                );
            } else if set[..n].contains(name) {
                errors.push(name.span(), format!("`{name}` is named twice"));
            }
        }
    }

    if !model.generics.params.is_empty() {
        errors.push(
            model.generics.span(),
            "a model cannot be generic: its table must be known at compile time",
        );
    }
    let mut primary = None;
    for field in &model.fields {
        let a = &field.attrs;
        let name = base_name(&field.ty).unwrap_or_default();
        let optional = option_inner(&field.ty).is_some();
        if field.shape == Shape::ManyToMany {
            let any = [
                a.unique,
                a.primary_key,
                a.auto,
                a.auto_now,
                a.auto_now_add,
                a.username,
                a.index,
            ]
            .into_iter()
            .flatten()
            .next()
            .or(a.max_length.map(|x| x.1))
            .or(a.default.as_ref().map(|x| x.1))
            .or(a.on_delete.map(|x| x.1));
            if let Some(span) = any {
                errors.push(
                    span,
                    "a ManyToMany field has no column: it takes no #[field] arguments",
                );
            }
            continue;
        }
        if a.primary_key.is_some() || a.auto.is_some() {
            if let Some(first) = primary.replace(&field.ident) {
                errors.push(
                    field.ident.span(),
                    format!("a model has one primary key; `{first}` is one already"),
                );
            }
        }
        if let Some((_, span)) = a.max_length {
            if name != "String" {
                errors.push(
                    span,
                    "max_length applies only to String fields (a CharField)",
                );
            }
        }
        for (attr, label) in [
            (a.max_digits, "max_digits"),
            (a.decimal_places, "decimal_places"),
        ] {
            if let Some((_, span)) = attr {
                if name != "Decimal" {
                    errors.push(span, format!("{label} applies only to Decimal fields"));
                }
            }
        }
        if name == "Decimal" && (a.max_digits.is_none() || a.decimal_places.is_none()) {
            errors.push(
                field.ident.span(),
                "a Decimal field needs #[field(max_digits = N, decimal_places = M)]",
            );
        }
        if let Some((rule, span)) = a.on_delete {
            if name != "ForeignKey" && name != "OneToOne" {
                errors.push(
                    span,
                    "on_delete applies only to ForeignKey and OneToOne fields",
                );
            } else if matches!(rule, OnDelete::SetNull) && !optional {
                errors.push(
                    span,
                    "on_delete = set_null needs a field that can be NULL: make it an Option<...>",
                );
            }
        }
        if let Some(span) = a.auto {
            if name != "i64" || optional {
                errors.push(span, "auto applies only to an i64 primary key");
            }
        }
        for (attr, label) in [(a.auto_now, "auto_now"), (a.auto_now_add, "auto_now_add")] {
            if let Some(span) = attr {
                if name != "OffsetDateTime" {
                    errors.push(
                        span,
                        format!("{label} applies only to OffsetDateTime fields"),
                    );
                }
            }
        }
    }
    if primary.is_none() {
        if let Some(id) = model.columns().find(|f| f.ident == "id") {
            errors.push(
                id.ident.span(),
                "without a primary key the table gets an implicit `id`: mark this field #[field(primary_key, auto)] or rename it",
            );
        }
    }
    if let Some(span) = model.attrs.authorized_user {
        let passwords = model
            .columns()
            .filter(|f| base_name(&f.ty).as_deref() == Some("Password"))
            .count();
        if passwords != 1 {
            errors.push(span, "the user model needs exactly one `Password` field");
        }
        match username_field(model) {
            Some(field) if base_name(&field.ty).as_deref() != Some("String") => {
                errors.push(field.ident.span(), "the username field must be a String")
            }
            Some(_) => {}
            None => errors.push(
                span,
                "the user model needs a username: a field named `username`, or one marked #[field(username)]",
            ),
        }
        if let Some(pk) = model.primary_key() {
            if base_name(&pk.ty).as_deref() != Some("i64") {
                errors.push(
                    pk.ident.span(),
                    "the user model's primary key must be an i64 (user ids are i64)",
                );
            }
        }
    }
}

pub fn username_field(model: &Model) -> Option<&super::ast::Field> {
    model
        .columns()
        .find(|f| f.attrs.username.is_some())
        .or_else(|| model.columns().find(|f| f.ident == "username"))
}
