//! `#[reverse]`: a bodyless `async fn name(payload: P) -> R;` becomes a unit struct named like
//! the function, implementing `::fluxon::Reverse` with `P`, `R` and the name.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, LitStr, ReturnType, TraitItemFn, Visibility};

use crate::ctxt::Ctxt;

pub fn reverse(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown #[reverse] argument; expected `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    // A visibility, then what a trait's method declaration looks like: `async fn f(p: P) -> R;`.
    let (vis, rest) = split_visibility(item)?;
    let decl: TraitItemFn = syn::parse2(rest).map_err(|err| {
        syn::Error::new(
            err.span(),
            "#[reverse] declares a client handler: `async fn name(payload: P) -> R;`, with no body",
        )
    })?;
    let sig = &decl.sig;
    let mut errors = Ctxt::default();
    let mut push = |err: syn::Error| errors.push_error(err);
    if let Some(body) = &decl.default {
        push(syn::Error::new(
            body.span(),
            "a #[reverse] declaration has no body: the client gives its handler with `conn.on(..)`",
        ));
    }
    if !sig.generics.params.is_empty() {
        push(syn::Error::new(
            sig.generics.span(),
            "a reverse request cannot be generic",
        ));
    }
    let mut payload = quote!(());
    let mut inputs = sig.inputs.iter();
    if let Some(input) = inputs.next() {
        match input {
            FnArg::Typed(typed) => {
                let ty = &typed.ty;
                payload = quote_spanned!(ty.span()=> #ty);
            }
            FnArg::Receiver(receiver) => push(syn::Error::new(
                receiver.span(),
                "a reverse request takes its payload, not `self`",
            )),
        }
    }
    for extra in inputs {
        push(syn::Error::new(
            extra.span(),
            "a reverse request takes one payload: put several values in a tuple or a struct",
        ));
    }
    errors.check()?;
    let reply = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote_spanned!(ty.span()=> #ty),
    };
    let ident = &sig.ident;
    let name = name.unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let docs: Vec<_> = decl
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let struct_doc = format!(" The reverse request `{}`.", name.value());
    Ok(quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #struct_doc]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #ident;

        impl ::fluxon::Reverse for #ident {
            type Payload = #payload;
            type Reply = #reply;
            const NAME: &'static str = #name;
        }
    })
}

/// The item's visibility (a trait method declaration has none), and the rest.
fn split_visibility(item: TokenStream) -> syn::Result<(Visibility, TokenStream)> {
    struct Split(Visibility, TokenStream);
    impl syn::parse::Parse for Split {
        fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
            let attrs = input.call(syn::Attribute::parse_outer)?;
            let vis: Visibility = input.parse()?;
            let rest: TokenStream = input.parse()?;
            Ok(Split(vis, quote!(#(#attrs)* #rest)))
        }
    }
    let Split(vis, rest) = syn::parse2(item)?;
    Ok((vis, rest))
}
