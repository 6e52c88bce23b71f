//! The annotated function, parsed into the parts a view is made of.

use syn::{FnArg, ItemFn, ReturnType, Type};

/// The shape of a view function, before validation.
pub struct ViewFn {
    pub item: ItemFn,
    /// The `Request` parameter's type, as written.
    pub request_ty: Option<Box<Type>>,
    /// The payload parameter's type; `None` for a view without a payload.
    pub payload_ty: Option<Box<Type>>,
    /// Parameters past the second, or a `self` receiver: reported by validation.
    pub extra_params: Vec<FnArg>,
    /// The declared return type (`None` for `()`).
    pub output: Option<Box<Type>>,
}

impl ViewFn {
    pub fn parse(item: ItemFn) -> Self {
        let mut typed = Vec::new();
        let mut extra_params = Vec::new();
        for arg in &item.sig.inputs {
            match arg {
                FnArg::Typed(pat) if typed.len() < 2 => typed.push(pat.ty.clone()),
                other => extra_params.push(other.clone()),
            }
        }
        let mut typed = typed.into_iter();
        let output = match &item.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(ty.clone()),
        };
        ViewFn {
            request_ty: typed.next(),
            payload_ty: typed.next(),
            extra_params,
            output,
            item,
        }
    }

    pub fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }

    /// Whether the return type is spelled `...::Result<..>`: then `Err` becomes an error reply.
    pub fn returns_result(&self) -> bool {
        match self.output.as_deref() {
            Some(Type::Path(path)) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        }
    }
}

/// Macros known not to expand to an `.await` (the standard library's, and the usual logging
/// ones): a body that calls any other macro may wait inside it, unseen.
const MACROS_THAT_NEVER_WAIT: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "cfg",
    "column",
    "concat",
    "dbg",
    "debug",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "env",
    "eprint",
    "eprintln",
    "error",
    "file",
    "format",
    "format_args",
    "include_bytes",
    "include_str",
    "info",
    "line",
    "matches",
    "module_path",
    "option_env",
    "panic",
    "print",
    "println",
    "stringify",
    "todo",
    "trace",
    "unimplemented",
    "unreachable",
    "vec",
    "warn",
    "write",
    "writeln",
];

/// Keywords an expression may follow, so that `keyword !(..)` is a negation, not a macro call.
const KEYWORDS_BEFORE_NOT: &[&str] = &[
    "break", "else", "if", "in", "let", "loop", "match", "move", "mut", "return", "unsafe", "while",
];

/// Attributes that may stay on a function whose body moves into a plain `fn`: lints only. Any
/// other (an instrumenting or rewriting attribute) might treat an `async fn` differently.
const LINT_ATTRIBUTES: &[&str] = &["allow", "expect", "warn", "deny", "forbid"];

impl ViewFn {
    /// Whether an `async fn` view can never wait: no `.await` anywhere in its body (nested async
    /// blocks and closures included), no macro that might hide one, no attribute but lints. Such
    /// a body is the same code as a plain `fn`, and the server runs it as one, with no future.
    pub fn never_waits(&self) -> bool {
        self.is_async()
            && self.item.attrs.iter().all(|attr| {
                attr.path().is_ident("doc")
                    || LINT_ATTRIBUTES
                        .iter()
                        .any(|lint| attr.path().is_ident(lint))
            })
            && !may_wait(quote::ToTokens::to_token_stream(&self.item.block))
    }
}

/// Whether tokens hold an `await`, or a macro call other than [`MACROS_THAT_NEVER_WAIT`].
fn may_wait(tokens: proc_macro2::TokenStream) -> bool {
    use proc_macro2::TokenTree;
    let mut previous: Option<TokenTree> = None;
    let mut before_previous: Option<TokenTree> = None;
    for token in tokens {
        match &token {
            TokenTree::Ident(ident) if ident == "await" => return true,
            TokenTree::Group(group) => {
                // `name!(..)`, `name![..]`, `name! {..}`: a macro call.
                if let (Some(TokenTree::Punct(bang)), Some(name)) = (&previous, &before_previous) {
                    // After a keyword (`if !(..)`, `return !(..)`) or an operator, `!` negates.
                    let called = matches!(name, TokenTree::Ident(name)
                        if !KEYWORDS_BEFORE_NOT.iter().any(|k| name == k)
                            && !MACROS_THAT_NEVER_WAIT.iter().any(|m| name == m));
                    if bang.as_char() == '!' && called {
                        return true;
                    }
                }
                if may_wait(group.stream()) {
                    return true;
                }
            }
            _ => {}
        }
        before_previous = previous.replace(token);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::ViewFn;

    fn never_waits(item: proc_macro2::TokenStream) -> bool {
        ViewFn::parse(syn::parse2(item).expect("a function")).never_waits()
    }

    #[test]
    fn a_body_without_await_or_unknown_macros_never_waits() {
        assert!(never_waits(quote::quote! {
            async fn echo(_req: Request, data: Vec<u8>) -> Vec<u8> { data }
        }));
        assert!(never_waits(quote::quote! {
            #[allow(clippy::needless_return)]
            async fn add(_req: Request, (a, b): (i64, i64)) -> Result<i64, String> {
                if !(a > 0) && b != 0 { return Err(format!("{a}")); }
                tracing::info!(a, "adding");
                assert!(a < i64::MAX, "{}", vec![1, 2].len());
                Ok(a + b)
            }
        }));
    }

    #[test]
    fn anything_that_might_wait_is_left_to_the_future() {
        for item in [
            // A plain `fn` runs on the blocking pool as before.
            quote::quote! { fn f(_req: Request) -> u8 { 1 } },
            quote::quote! { async fn f(_req: Request) { tokio::task::yield_now().await } },
            // Inside a nested block, closure or macro: still seen.
            quote::quote! { async fn f(_req: Request) { let x = async { g().await }; drop(x) } },
            quote::quote! { async fn f(_req: Request) { println!("{}", g().await) } },
            // A macro that may expand to `.await`.
            quote::quote! { async fn f(_req: Request) { tokio::select! { _ = a => {} } } },
            quote::quote! { async fn f(_req: Request) { my_macro![] } },
            // An attribute that may treat an `async fn` its own way.
            quote::quote! { #[tracing::instrument] async fn f(_req: Request) -> u8 { 1 } },
        ] {
            assert!(!never_waits(item.clone()), "{item}");
        }
    }
}
