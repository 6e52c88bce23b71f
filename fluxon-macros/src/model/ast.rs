//! The struct under `#[derive(Model)]`, parsed into fields and their attributes.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Fields, Ident, Type};

use super::attr::{self, FieldAttrs, ModelAttrs};

/// Collects every error so the user sees them all at once.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push_error(syn::Error::new(span, message));
    }

    pub fn push_error(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// What a field is, judged by its type's spelling (the compiler checks the rest).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A column.
    Column,
    /// `ManyToMany<..>`: no column.
    ManyToMany,
}

pub struct Field {
    pub ident: Ident,
    pub ty: Type,
    pub attrs: FieldAttrs,
    pub shape: Shape,
}

pub struct Model {
    pub ident: Ident,
    pub attrs: ModelAttrs,
    pub fields: Vec<Field>,
    pub generics: syn::Generics,
}

/// The last path segment's name of a type, and of the type inside an `Option`.
pub fn type_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// The `T` of `Option<T>`, if `ty` is spelled as an Option.
pub fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::Type(inner) => Some(inner),
            _ => None,
        }),
        _ => None,
    }
}

/// The type's name with any `Option` taken off.
pub fn base_name(ty: &Type) -> Option<String> {
    type_name(option_inner(ty).unwrap_or(ty))
}

impl Model {
    pub fn parse(input: DeriveInput, errors: &mut Errors) -> Option<Model> {
        let attrs = attr::model_attrs(&input.attrs, errors);
        let named = match input.data {
            Data::Struct(data) => match data.fields {
                Fields::Named(named) => named,
                _ => {
                    errors.push(
                        input.ident.span(),
                        "a model is a struct with named fields: `struct User { username: String }`",
                    );
                    return None;
                }
            },
            _ => {
                errors.push(
                    input.ident.span(),
                    "#[derive(Model)] goes on a struct with named fields",
                );
                return None;
            }
        };
        let fields = named
            .named
            .into_iter()
            .filter_map(|field| {
                let ident = field.ident?;
                let attrs = attr::field_attrs(&field.attrs, errors);
                let shape = if base_name(&field.ty).as_deref() == Some("ManyToMany") {
                    Shape::ManyToMany
                } else {
                    Shape::Column
                };
                Some(Field {
                    ident,
                    ty: field.ty,
                    attrs,
                    shape,
                })
            })
            .collect();
        Some(Model {
            ident: input.ident,
            attrs,
            fields,
            generics: input.generics,
        })
    }

    pub fn columns(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.shape == Shape::Column)
    }

    pub fn primary_key(&self) -> Option<&Field> {
        self.columns()
            .find(|f| f.attrs.primary_key.is_some() || f.attrs.auto.is_some())
    }

    /// The table name: given, or the struct's name in snake case.
    pub fn table(&self) -> String {
        match &self.attrs.table {
            Some(table) => table.value(),
            None => snake_case(&self.ident.to_string()),
        }
    }
}

pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
