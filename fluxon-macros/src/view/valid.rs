//! Checks a parsed view and reports every problem at once, each spanned on the user's code.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, Type};

use super::ast::ViewFn;

use crate::ctxt::Ctxt as Errors;

pub fn check(view: &ViewFn) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &view.item.sig;

    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(
            sig.generics.span(),
            "a view cannot be generic: the server must know its payload and reply types; write one view per type",
        );
    }
    if let Some(constness) = &sig.constness {
        errors.push(constness.span, "a view cannot be a `const fn`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(unsafety.span, "a view cannot be an `unsafe fn`");
    }
    if let Some(abi) = &sig.abi {
        errors.push(abi.span(), "a view cannot have an `extern` ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic.span(), "a view cannot be variadic");
    }
    if view.request_ty.is_none() {
        errors.push(
            sig.paren_token.span.join(),
            "a view takes the `Request` first: `fn name(req: Request)` or `fn name(req: Request, payload: T)`",
        );
    }
    if let Some(payload) = &view.payload_ty {
        if names_request(payload) {
            errors.push(
                payload.span(),
                "the `Request` must be the first parameter and the payload the second: `fn name(req: Request, payload: T)`",
            );
        }
    }
    for extra in &view.extra_params {
        let message = match extra {
            syn::FnArg::Receiver(_) => "a view cannot take `self`; write a free function",
            syn::FnArg::Typed(_) => {
                "a view takes at most two parameters, the `Request` and one payload; put several values in a struct or a tuple"
            }
        };
        errors.push(extra.span(), message);
    }
    for ty in view
        .request_ty
        .iter()
        .chain(&view.payload_ty)
        .chain(&view.output)
    {
        if let Some(span) = borrowed_or_impl(ty) {
            errors.push(
                span,
                "view parameter and return types must be owned (no references, lifetimes or `impl Trait`): a payload is decoded from the wire and must not borrow from it",
            );
        }
    }
    if !view.is_async() {
        let mut awaits = FindAwait(None);
        awaits.visit_block(&view.item.block);
        if let Some(span) = awaits.0 {
            errors.push(
                span,
                "`.await` in a view declared with plain `fn`: make it `async fn`, or remove the `.await` (a plain `fn` view runs on a blocking thread)",
            );
        }
    }
    errors.check()
}

/// Whether a type is spelled `Request` or `...::Request`.
fn names_request(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Request"),
        _ => false,
    }
}

/// The span of the first reference, lifetime or `impl Trait` inside a type.
fn borrowed_or_impl(ty: &Type) -> Option<Span> {
    struct Find(Option<Span>);
    impl<'ast> Visit<'ast> for Find {
        fn visit_type_reference(&mut self, node: &'ast syn::TypeReference) {
            self.0.get_or_insert(node.span());
        }
        fn visit_lifetime(&mut self, node: &'ast syn::Lifetime) {
            self.0.get_or_insert(node.span());
        }
        fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert(node.span());
        }
    }
    let mut find = Find(None);
    find.visit_type(ty);
    find.0
}

/// The first `.await` in a body, not counting those inside nested async blocks or closures.
struct FindAwait(Option<Span>);

impl<'ast> Visit<'ast> for FindAwait {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Await(await_expr) => {
                self.0.get_or_insert(await_expr.await_token.span);
            }
            Expr::Async(_) => {}
            Expr::Closure(closure) if closure.asyncness.is_some() => {}
            _ => syn::visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
