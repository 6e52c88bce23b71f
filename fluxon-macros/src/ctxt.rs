//! One collector of errors for every macro (as serde's derive has its `Ctxt`): each problem is
//! pushed with its span on the user's code as it is found, and all of them are reported at once,
//! so a user fixes them in one round instead of one per build.

use proc_macro2::Span;

/// Errors found so far. Forgetting to [`check`](Ctxt::check) it is a bug of the macro: a debug
/// build says so.
#[derive(Default)]
pub struct Ctxt {
    errors: Option<syn::Error>,
    checked: bool,
}

impl Ctxt {
    /// A problem at `span`.
    pub fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push_error(syn::Error::new(span, message));
    }

    /// A problem already made into an error (a parse failure).
    pub fn push_error(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// Every problem, combined into one error; `Ok` when there was none.
    pub fn check(mut self) -> syn::Result<()> {
        self.checked = true;
        self.errors.take().map_or(Ok(()), Err)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        debug_assert!(
            self.checked || std::thread::panicking(),
            "a macro dropped its errors without checking them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_kept_in_order() {
        let mut ctxt = Ctxt::default();
        ctxt.push(Span::call_site(), "first");
        ctxt.push(Span::call_site(), "second");
        let all: Vec<String> = ctxt
            .check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(all, ["first", "second"]);
    }

    #[test]
    fn nothing_found_is_ok() {
        assert!(Ctxt::default().check().is_ok());
    }
}
