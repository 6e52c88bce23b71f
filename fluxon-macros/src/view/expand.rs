//! Generates the view: a unit struct named like the function, the function kept as its `handler`,
//! and an implementation of `::fluxon::View` that calls it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, LitStr};

use super::ast::ViewFn;
use super::{attr, valid};

pub fn view(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item = match syn::parse2::<Item>(item)? {
        Item::Fn(item) => item,
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[view] goes on a function: `async fn name(req: Request, payload: T) -> R`",
            ))
        }
    };
    let args = attr::parse(args);
    let view = ViewFn::parse(item);
    let checked = valid::check(&view);
    let args = match (args, checked) {
        (Ok(args), Ok(())) => args,
        (Err(mut a), Err(b)) => {
            a.combine(b);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let name = match args.name {
        Some(name) if name.value().is_empty() => {
            return Err(syn::Error::new(
                name.span(),
                "a view's name cannot be empty",
            ))
        }
        Some(name) => name,
        None => LitStr::new(&view.item.sig.ident.to_string(), view.item.sig.ident.span()),
    };
    Ok(generate(&view, &name))
}

fn generate(view: &ViewFn, name: &LitStr) -> TokenStream {
    let item = &view.item;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let (docs, other_attrs): (Vec<_>, Vec<_>) = item
        .attrs
        .iter()
        .partition(|attr| attr.path().is_ident("doc"));
    let mut handler_sig = item.sig.clone();
    handler_sig.ident = format_ident!("handler", span = ident.span());

    let payload_ty = match &view.payload_ty {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let payload_span = view
        .payload_ty
        .as_ref()
        .map_or_else(Span::call_site, |ty| ty.span());
    let output_ty = match &view.output {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let output_span = view
        .output
        .as_ref()
        .map_or_else(Span::call_site, |ty| ty.span());
    let reply_ty = if view.returns_result() {
        quote_spanned!(output_span=> <#output_ty as ::fluxon::__private::IntoViewResult>::Reply)
    } else {
        output_ty.clone()
    };
    let error_ty = if view.returns_result() {
        quote_spanned!(output_span=> <#output_ty as ::fluxon::__private::IntoViewResult>::Error)
    } else {
        quote!(::fluxon::NoViewError)
    };
    let convert = if view.returns_result() {
        quote_spanned!(output_span=> ::fluxon::__private::IntoViewResult::into_view_result(output))
    } else {
        quote!(::core::result::Result::Ok(output))
    };
    let request_span = view
        .request_ty
        .as_ref()
        .map_or_else(Span::call_site, |ty| ty.span());
    let req_arg = quote_spanned!(request_span=> req);
    let args = if view.payload_ty.is_some() {
        quote!(#req_arg, payload)
    } else {
        quote!(#req_arg)
    };
    let unused_payload = if view.payload_ty.is_some() {
        quote!()
    } else {
        quote!(let () = payload;)
    };
    let never_waits = view.never_waits();
    let run = if never_waits {
        quote!(#ident::handler_now(#args))
    } else if view.is_async() {
        quote!(#ident::handler(#args).await)
    } else {
        quote!(::fluxon::__private::run_blocking(move || #ident::handler(#args)).await?)
    };
    // Spanned on the user's types, so "does not implement Deserialize/Serialize" points at them.
    let payload_assoc = quote_spanned!(payload_span=> type Payload = #payload_ty;);
    let reply_assoc = quote_spanned!(output_span=> type Reply = #reply_ty;);
    let error_assoc = quote_spanned!(output_span=> type Error = #error_ty;);
    let struct_doc = format!(
        " The view `{}`; see [`{ident}::handler`] for its function.",
        name.value()
    );

    let functions = functions(view, &handler_sig, &other_attrs);
    let call_now = if never_waits {
        quote! {
            const NEVER_WAITS: bool = true;

            fn call_now(
                self,
                req: ::fluxon::Request,
                payload: <Self as ::fluxon::View>::Payload,
            ) -> ::core::result::Result<
                ::core::result::Result<<Self as ::fluxon::View>::Reply, ::fluxon::ViewError>,
                (::fluxon::Request, <Self as ::fluxon::View>::Payload),
            > {
                #unused_payload
                ::core::result::Result::Ok(#ident::finish(#run))
            }
        }
    } else {
        quote!()
    };

    quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #struct_doc]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #ident;

        impl #ident {
            #functions

            /// The view's output as the reply, or the error its client gets.
            fn finish(output: #output_ty) -> ::core::result::Result<#reply_ty, ::fluxon::ViewError> {
                #convert
            }
        }

        impl ::fluxon::View for #ident {
            #payload_assoc
            #reply_assoc
            #error_assoc
            const NAME: &'static str = #name;

            fn call(
                self,
                req: ::fluxon::Request,
                payload: <Self as ::fluxon::View>::Payload,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<<Self as ::fluxon::View>::Reply, ::fluxon::ViewError>,
            > + ::core::marker::Send + 'static {
                #unused_payload
                async move { #ident::finish(#run) }
            }

            #call_now
        }
    }
}

/// The view's functions: `handler` as written; for a view that never waits, its body in a plain
/// `handler_now` (what the server runs, with no future) and `handler` an `async fn` calling it.
fn functions(
    view: &ViewFn,
    handler_sig: &syn::Signature,
    other_attrs: &[&syn::Attribute],
) -> TokenStream {
    let item = &view.item;
    let vis = &item.vis;
    let block = &item.block;
    if !view.never_waits() {
        return quote! {
            /// The view's function, as written.
            #(#other_attrs)*
            #vis #handler_sig #block
        };
    }
    let mut now_sig = handler_sig.clone();
    now_sig.asyncness = None;
    now_sig.ident = format_ident!("handler_now", span = handler_sig.ident.span());
    // The async `handler` forwards its parameters: a parameter written as a pattern gets a name.
    let mut async_sig = handler_sig.clone();
    let mut forwarded = Vec::new();
    for (i, input) in async_sig.inputs.iter_mut().enumerate() {
        if let syn::FnArg::Typed(typed) = input {
            let name = match &*typed.pat {
                syn::Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    pat.ident.clone()
                }
                _ => format_ident!("arg{}", i),
            };
            *typed.pat = syn::parse_quote!(#name);
            forwarded.push(name);
        }
    }
    let ident = &item.sig.ident;
    quote! {
        /// The view's function, as written, with no `.await` in its body: the server runs it with
        /// no future, and [`handler`](Self::handler) is its `async` form.
        #(#other_attrs)*
        #vis #now_sig #block

        /// The view's function, as written.
        #vis #async_sig {
            #ident::handler_now(#(#forwarded),*)
        }
    }
}
