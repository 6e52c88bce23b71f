//! Procedural macros for fluxon. Use them through the `fluxon` crate (`fluxon::view`), which
//! documents them; the code they generate calls into `::fluxon::__private`.
//!
//! Each macro (`view`, `model`) runs parse (`ast`, `attr`) -> validate (`valid`) -> expand
//! (`expand`); every problem found is reported with a span on the user's code, all at once.

mod ctxt;
mod field_enum;
mod model;
mod reverse;
mod view;

use proc_macro::TokenStream;

/// Turns an `async fn` or `fn` taking a `Request` and one payload into a view. See `fluxon::view`.
#[proc_macro_attribute]
pub fn view(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match view::view(args.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // Keep the user's item beside the error, so the error is the only complaint (no knock-on
        // "unused import" or "cannot find" errors).
        Err(err) => {
            let mut out = err.into_compile_error();
            out.extend(item);
            out.into()
        }
    }
}

/// Stores a struct as a table row. See `fluxon::db`.
#[proc_macro_derive(Model, attributes(model, field))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    model::derive(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Stores an enum of unit variants in a column. See `fluxon::db::FieldEnum`.
#[proc_macro_derive(FieldEnum, attributes(field_enum))]
pub fn derive_field_enum(input: TokenStream) -> TokenStream {
    field_enum::derive(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares a reverse request: `async fn name(payload: P) -> R;`. See `fluxon::reverse`.
#[proc_macro_attribute]
pub fn reverse(args: TokenStream, item: TokenStream) -> TokenStream {
    reverse::reverse(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
