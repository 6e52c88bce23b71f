//! The struct under `#[derive(Model)]`, parsed into fields and their attributes.

use syn::{Data, DeriveInput, Fields, Ident, Type};

use super::attr::{self, FieldAttrs, ModelAttrs};

pub use crate::ctxt::Ctxt as Errors;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(text: &str) -> Type {
        syn::parse_str(text).expect("a type")
    }

    #[test]
    fn snake_case_splits_before_capitals() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("OrderLine"), "order_line");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

    #[test]
    fn type_names_see_through_paths_and_options() {
        assert_eq!(type_name(&ty("String")).as_deref(), Some("String"));
        assert_eq!(
            type_name(&ty("fluxon::db::Password")).as_deref(),
            Some("Password")
        );
        assert_eq!(type_name(&ty("&str")), None);
        assert_eq!(
            base_name(&ty("Option<ForeignKey<User>>")).as_deref(),
            Some("ForeignKey")
        );
        assert_eq!(
            base_name(&ty("std::option::Option<i64>")).as_deref(),
            Some("i64")
        );
        assert!(option_inner(&ty("Vec<i64>")).is_none());
        assert!(
            option_inner(&ty("Option")).is_none(),
            "no argument: not an Option of anything"
        );
    }

    #[test]
    fn a_model_is_parsed_with_its_columns_key_and_table() {
        let input: DeriveInput = syn::parse_str(
            "#[model(table = \"people\")] struct Person { #[field(primary_key)] code: String, name: String, friends: ManyToMany<Person, Friendship> }",
        )
        .expect("a struct");
        let mut errors = Errors::default();
        let model = Model::parse(input, &mut errors).expect("parsed");
        errors.check().expect("no errors");
        assert_eq!(model.table(), "people");
        let columns: Vec<String> = model.columns().map(|f| f.ident.to_string()).collect();
        assert_eq!(columns, ["code", "name"], "a many-to-many has no column");
        assert_eq!(
            model.primary_key().map(|f| f.ident.to_string()).as_deref(),
            Some("code")
        );
    }

    #[test]
    fn a_tuple_struct_or_an_enum_is_refused_with_one_error() {
        for text in ["struct Pair(i64, i64);", "enum Kind { A }"] {
            let input: DeriveInput = syn::parse_str(text).expect("an item");
            let mut errors = Errors::default();
            assert!(Model::parse(input, &mut errors).is_none());
            let all = errors.check().expect_err("refused");
            assert_eq!(all.into_iter().count(), 1, "{text}");
        }
    }
}
