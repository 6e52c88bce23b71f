//! Generates `impl Model`, the column constants (`User::username`), and `impl AuthorizedUser`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use super::ast::{base_name, Errors, Field, Model, Shape};
use super::attr::OnDelete;
use super::valid;

pub fn derive(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let mut errors = Errors::default();
    let model = Model::parse(input, &mut errors);
    if let Some(model) = &model {
        valid::check(model, &mut errors);
    }
    match (errors.check(), model) {
        (Ok(()), Some(model)) => Ok(generate(&model)),
        (Ok(()), None) => Ok(TokenStream::new()),
        // The errors, and the model anyway: its uses elsewhere (`User::SCHEMA`, `User::name`)
        // then compile, so one mistake in the derive is one error, not one per use.
        (Err(err), Some(mut model)) => {
            // Generated from the fields' types and names only (a bad attribute left out), so the
            // stand-in adds no error of its own.
            let mut out = err.into_compile_error();
            model.attrs.validate = None;
            model.attrs.unique.clear();
            for field in &mut model.fields {
                let attrs = std::mem::take(&mut field.attrs);
                field.attrs.primary_key = attrs.primary_key;
                field.attrs.auto = attrs.auto;
                field.attrs.unique = attrs.unique;
                field.attrs.username = attrs.username;
            }
            out.extend(generate(&model));
            Ok(out)
        }
        (Err(err), None) => Err(err),
    }
}

fn on_delete(rule: OnDelete) -> TokenStream {
    match rule {
        OnDelete::Cascade => quote!(::fluxon::db::OnDelete::Cascade),
        OnDelete::Protect => quote!(::fluxon::db::OnDelete::Protect),
        OnDelete::SetNull => quote!(::fluxon::db::OnDelete::SetNull),
        OnDelete::SetDefault => quote!(::fluxon::db::OnDelete::SetDefault),
        OnDelete::NoAction => quote!(::fluxon::db::OnDelete::NoAction),
    }
}

/// An SQL identifier in double quotes (as `fluxon::db::schema::quote_ident` writes it).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `ColumnSchema` of one column field.
fn column_schema(field: &Field, table: &str) -> TokenStream {
    let ty = &field.ty;
    let a = &field.attrs;
    let name = field.ident.to_string();
    let span = ty.span();
    let mut kind = quote_spanned!(span=> <#ty as ::fluxon::db::SqlType>::KIND);
    if let Some((n, span)) = a.max_length {
        kind = quote_spanned!(span=> #kind.with_max_length(#n));
    }
    if let (Some((digits, span)), Some((places, _))) = (a.max_digits, a.decimal_places) {
        kind = quote_spanned!(span=> #kind.with_digits(#digits, #places));
    }
    if let Some((rule, span)) = a.on_delete {
        let rule = on_delete(rule);
        kind = quote_spanned!(span=> #kind.with_on_delete(#rule));
    }
    if let Some(span) = a.auto {
        kind = quote_spanned!(span=> #kind.auto());
    }
    let unique = a.unique.is_some();
    let primary_key = a.primary_key.is_some() || a.auto.is_some();
    let default = match &a.default {
        Some((sql, _)) => quote!(::core::option::Option::Some(#sql)),
        None => quote!(::core::option::Option::None),
    };
    let auto_now = a.auto_now.is_some();
    let auto_now_add = a.auto_now_add.is_some();
    let index = a.index.is_some();
    let qualified = format!("{}.{}", quote_ident(table), quote_ident(&name));
    let renamed_from = match &a.renamed_from {
        Some(old) => quote!(::core::option::Option::Some(#old)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        ::fluxon::db::ColumnSchema {
            name: #name,
            kind: #kind,
            nullable: <#ty as ::fluxon::db::SqlType>::NULLABLE,
            unique: #unique,
            primary_key: #primary_key,
            default: #default,
            auto_now: #auto_now,
            auto_now_add: #auto_now_add,
            in_struct: true,
            qualified: #qualified,
            renamed_from: #renamed_from,
            index: #index,
        }
    }
}

fn generate(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let table = model.table();
    let primary = model.primary_key();
    let implicit_id = primary.is_none();
    let offset = usize::from(implicit_id);

    let mut schemas = Vec::new();
    if implicit_id {
        let qualified = format!("{}.{}", quote_ident(&table), quote_ident("id"));
        schemas.push(quote! {
            ::fluxon::db::ColumnSchema {
                primary_key: true,
                in_struct: false,
                qualified: #qualified,
                ..::fluxon::db::ColumnSchema::new("id", ::fluxon::db::FieldKind::Auto)
            }
        });
    }
    let columns: Vec<&Field> = model.columns().collect();
    schemas.extend(columns.iter().map(|f| column_schema(f, &table)));
    let quoted_name = quote_ident(&table);
    // The key first (a row is read with it), then the struct's columns.
    let key_name = primary.map_or_else(|| "id".to_owned(), |f| f.ident.to_string());
    let select_list = std::iter::once(key_name)
        .chain(columns.iter().map(|f| f.ident.to_string()))
        .map(|name| format!("{quoted_name}.{}", quote_ident(&name)))
        .collect::<Vec<_>>()
        .join(", ");
    let insertable: Vec<String> = columns
        .iter()
        .filter(|f| f.attrs.auto.is_none())
        .map(|f| quote_ident(&f.ident.to_string()))
        .collect();
    let insert_sql = if insertable.is_empty() {
        format!("INSERT INTO {quoted_name} DEFAULT VALUES")
    } else {
        format!(
            "INSERT INTO {quoted_name} ({}) VALUES ({})",
            insertable.join(", "),
            vec!["?"; insertable.len()].join(", ")
        )
    };

    let reads = columns.iter().enumerate().map(|(i, field)| {
        let name = &field.ident;
        let ty = &field.ty;
        let index = i + offset;
        quote_spanned! {ty.span()=>
            #name: <#ty as ::fluxon::db::SqlType>::from_sql(row.get_ref(start + #i)?, &columns[#index])?
        }
    });
    let defaults = model
        .fields
        .iter()
        .filter(|f| f.shape == Shape::ManyToMany)
        .map(|f| {
            let name = &f.ident;
            quote!(#name: ::core::default::Default::default())
        });
    let writes: Vec<TokenStream> = columns
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let name = &field.ident;
            let ty = &field.ty;
            let index = i + offset;
            quote_spanned! {ty.span()=>
                <#ty as ::fluxon::db::SqlType>::to_sql(&self.#name, &columns[#index])?
            }
        })
        .collect();

    // A relation field holds nothing; touching it here keeps "field is never read" quiet.
    let touch_relations = model
        .fields
        .iter()
        .filter(|f| f.shape == Shape::ManyToMany)
        .map(|f| {
            let name = &f.ident;
            quote!(let _ = &self.#name;)
        })
        .collect::<Vec<_>>();

    let (key_ty, key_column, key_value) = match primary {
        Some(field) => {
            let ty = &field.ty;
            let name = &field.ident;
            (
                quote!(#ty),
                field.ident.to_string(),
                quote!(::core::option::Option::Some(::core::clone::Clone::clone(&self.#name))),
            )
        }
        None => (
            quote!(i64),
            "id".to_owned(),
            quote!(::core::option::Option::None),
        ),
    };

    let mut consts = Vec::new();
    if implicit_id {
        consts.push(quote! {
            /// The implicit `id` column (assigned by the database).
            pub const id: ::fluxon::db::Column<#ident, i64, ::fluxon::db::ReadOnly> =
                ::fluxon::db::Column::new(0);
        });
    }
    for (i, field) in columns.iter().enumerate() {
        let name = &field.ident;
        let ty = &field.ty;
        let index = i + offset;
        let doc = format!("The `{name}` column.");
        let access = if field.attrs.auto.is_some() {
            quote!(::fluxon::db::ReadOnly)
        } else if field.attrs.unique.is_some() || field.attrs.primary_key.is_some() {
            quote!(::fluxon::db::Unique)
        } else {
            quote!(::fluxon::db::Writable)
        };
        consts.push(quote_spanned! {name.span()=>
            #[doc = #doc]
            pub const #name: ::fluxon::db::Column<#ident, #ty, #access> = ::fluxon::db::Column::new(#index);
        });
    }
    for field in model.fields.iter().filter(|f| f.shape == Shape::ManyToMany) {
        let name = &field.ident;
        let ty = &field.ty;
        let doc = format!("The `{name}` relation: add, remove and list through its join model.");
        consts.push(quote_spanned! {name.span()=>
            #[doc = #doc]
            pub const #name: ::fluxon::db::ManyToManyColumn<#ident, #ty> = ::fluxon::db::ManyToManyColumn::new();
        });
    }

    let authorized = model.attrs.authorized_user.map(|_| {
        let username = valid::username_field(model)
            .map(|f| f.ident.to_string())
            .unwrap_or_default();
        let password = model
            .columns()
            .find(|f| base_name(&f.ty).as_deref() == Some("Password"))
            .map(|f| f.ident.to_string())
            .unwrap_or_default();
        quote! {
            impl ::fluxon::db::AuthorizedUser for #ident {
                const USERNAME_COLUMN: &'static str = #username;
                const PASSWORD_COLUMN: &'static str = #password;
            }
        }
    });
    let authorized_flag = model.attrs.authorized_user.is_some();
    let table_renamed_from = match &model.attrs.renamed_from {
        Some(old) => quote!(::core::option::Option::Some(#old)),
        None => quote!(::core::option::Option::None),
    };
    let vis_doc = format!("Columns of the `{table}` table.");
    let validation = validation(model, &columns, offset);
    let unique_sets: Vec<Vec<String>> = model
        .attrs
        .unique
        .iter()
        .map(|set| set.iter().map(|i| i.to_string()).collect())
        .collect();
    let unique_sets = unique_sets.iter().map(|set| quote!(#(#set),*));

    quote! {
        impl ::fluxon::db::Model for #ident {
            type Key = #key_ty;
            const TABLE: &'static str = #table;
            const KEY_COLUMN: &'static str = #key_column;
            const SCHEMA: ::fluxon::db::TableSchema = ::fluxon::db::TableSchema {
                name: #table,
                columns: &[#(#schemas),*],
                authorized_user: #authorized_flag,
                quoted_name: #quoted_name,
                select_list: #select_list,
                insert_sql: #insert_sql,
                renamed_from: #table_renamed_from,
                unique_together: &[#(&[#unique_sets]),*],
            };

            fn from_row(
                row: &::fluxon::db::SqlRow<'_>,
                start: usize,
            ) -> ::core::result::Result<Self, ::fluxon::db::DbError> {
                let columns = <Self as ::fluxon::db::Model>::SCHEMA.columns;
                ::core::result::Result::Ok(#ident {
                    #(#reads,)*
                    #(#defaults,)*
                })
            }

            fn to_values(
                &self,
            ) -> ::core::result::Result<
                ::std::vec::Vec<::fluxon::db::Value>,
                ::fluxon::db::DbError,
            > {
                let columns = <Self as ::fluxon::db::Model>::SCHEMA.columns;
                #(#touch_relations)*
                ::core::result::Result::Ok(::std::vec![#(#writes),*])
            }

            fn write_values(
                &self,
                out: &mut ::std::vec::Vec<::fluxon::db::Value>,
            ) -> ::core::result::Result<(), ::fluxon::db::DbError> {
                let columns = <Self as ::fluxon::db::Model>::SCHEMA.columns;
                #(#touch_relations)*
                #(out.push(#writes);)*
                ::core::result::Result::Ok(())
            }

            fn key(&self) -> ::core::option::Option<Self::Key> {
                #key_value
            }

            #validation
        }

        #[doc = #vis_doc]
        // A column a program never names is not dead code: the table still has it.
        #[allow(non_upper_case_globals, dead_code)]
        impl #ident {
            #(#consts)*
        }

        #authorized
    }
}

/// `validate` and `validate_column` for a model with validators; nothing (the trait's defaults)
/// for one without.
fn validation(model: &Model, columns: &[&Field], offset: usize) -> TokenStream {
    let checked: Vec<(usize, &Field, &syn::Path)> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.attrs.validate.as_ref().map(|path| (i + offset, *f, path)))
        .collect();
    let whole = model.attrs.validate.as_ref();
    if checked.is_empty() && whole.is_none() {
        return quote!();
    }
    let field_checks = checked.iter().map(|(_, field, path)| {
        let name = &field.ident;
        let label = name.to_string();
        quote_spanned! {path.span()=>
            if let ::core::result::Result::Err(message) = #path(&self.#name) {
                errors.add(#label, ::std::string::ToString::to_string(&message));
            }
        }
    });
    let whole_check = whole.map(|path| quote_spanned! {path.span()=> #path(self, &mut errors); });
    let column_checks = checked.iter().map(|(index, field, path)| {
        let ty = &field.ty;
        let label = field.ident.to_string();
        quote_spanned! {path.span()=>
            #index => {
                if let ::core::option::Option::Some(value) = value.downcast_ref::<#ty>() {
                    if let ::core::result::Result::Err(message) = #path(value) {
                        errors.add(#label, ::std::string::ToString::to_string(&message));
                    }
                }
            }
        }
    });
    quote! {
        fn validate(&self) -> ::core::result::Result<(), ::fluxon::db::ValidationErrors> {
            let mut errors = ::fluxon::db::ValidationErrors::new();
            #(#field_checks)*
            #whole_check
            errors.into_result()
        }

        fn validate_column(
            index: usize,
            value: &dyn ::core::any::Any,
        ) -> ::core::result::Result<(), ::fluxon::db::ValidationErrors> {
            let mut errors = ::fluxon::db::ValidationErrors::new();
            #[allow(clippy::single_match)]
            match index {
                #(#column_checks)*
                _ => {}
            }
            let _ = value;
            errors.into_result()
        }
    }
}
