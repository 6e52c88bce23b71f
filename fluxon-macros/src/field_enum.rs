//! `#[derive(FieldEnum)]`: a Rust enum of unit variants as a column, stored as its variants'
//! names (text, the default) or, with `#[field_enum(integer)]`, as their explicit
//! discriminants. The generated code implements `::fluxon::db::SqlType` and `ColumnType`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields};

use crate::ctxt::Ctxt;

/// How the variants are stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    Text,
    Integer,
}

fn storage(input: &DeriveInput) -> syn::Result<Storage> {
    let mut storage = Storage::Text;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("field_enum"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("integer") {
                storage = Storage::Integer;
                Ok(())
            } else if meta.path.is_ident("text") {
                storage = Storage::Text;
                Ok(())
            } else {
                Err(meta.error("expected `text` or `integer`"))
            }
        })?;
    }
    Ok(storage)
}

pub fn derive(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(FieldEnum)] goes on an enum of unit variants",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "a field enum cannot be generic",
        ));
    }
    let storage = storage(&input)?;
    let mut errors = Ctxt::default();
    let mut push = |err: syn::Error| errors.push_error(err);
    let mut names = Vec::new();
    let mut numbers: Vec<Expr> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            push(syn::Error::new(
                variant.fields.span(),
                "a field enum's variants carry no data (store data with `Json<T>`)",
            ));
        }
        match (&variant.discriminant, storage) {
            (Some((_, number)), Storage::Integer) => numbers.push(number.clone()),
            (None, Storage::Integer) => push(syn::Error::new(
                variant.ident.span(),
                "an integer field enum gives every variant its number (`Shipped = 2`): stored rows keep them, so they must not move when variants are added or reordered",
            )),
            _ => {}
        }
        names.push(&variant.ident);
    }
    if data.variants.is_empty() {
        push(syn::Error::new(
            input.ident.span(),
            "a field enum needs at least one variant",
        ));
    }
    errors.check()?;
    let ident = &input.ident;
    let texts: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let (kind, to_sql, from_sql) = match storage {
        Storage::Text => (
            quote!(::fluxon::db::FieldKind::Text),
            quote! {
                let text = match self { #(#ident::#names => #texts,)* };
                ::core::result::Result::Ok(::fluxon::db::Value::Text(::std::string::ToString::to_string(text)))
            },
            quote! {
                let text = value.as_str().map_err(|e| ::fluxon::db::DbError::Decode {
                    column: column.name,
                    expected: ::core::stringify!(#ident),
                    reason: ::std::string::ToString::to_string(&e),
                })?;
                match text {
                    #(#texts => ::core::result::Result::Ok(#ident::#names),)*
                    other => ::core::result::Result::Err(::fluxon::db::DbError::Decode {
                        column: column.name,
                        expected: ::core::stringify!(#ident),
                        reason: ::std::format!("`{other}` is not one of its variants"),
                    }),
                }
            },
        ),
        Storage::Integer => (
            quote!(::fluxon::db::FieldKind::BigInteger),
            quote! {
                let number: i64 = match self { #(#ident::#names => (#numbers) as i64,)* };
                ::core::result::Result::Ok(::fluxon::db::Value::Integer(number))
            },
            quote! {
                let number = value.as_i64().map_err(|e| ::fluxon::db::DbError::Decode {
                    column: column.name,
                    expected: ::core::stringify!(#ident),
                    reason: ::std::string::ToString::to_string(&e),
                })?;
                #(if number == (#numbers) as i64 { return ::core::result::Result::Ok(#ident::#names); })*
                ::core::result::Result::Err(::fluxon::db::DbError::Decode {
                    column: column.name,
                    expected: ::core::stringify!(#ident),
                    reason: ::std::format!("{number} is not one of its variants' numbers"),
                })
            },
        ),
    };
    Ok(quote! {
        impl ::fluxon::db::SqlType for #ident {
            const KIND: ::fluxon::db::FieldKind = #kind;
            fn to_sql(
                &self,
                column: &::fluxon::db::ColumnSchema,
            ) -> ::core::result::Result<::fluxon::db::Value, ::fluxon::db::DbError> {
                let _ = column;
                #to_sql
            }
            fn from_sql(
                value: ::fluxon::db::ValueRef<'_>,
                column: &::fluxon::db::ColumnSchema,
            ) -> ::core::result::Result<Self, ::fluxon::db::DbError> {
                #from_sql
            }
        }

        impl ::fluxon::db::ColumnType for #ident {
            type Inner = #ident;
        }
    })
}
