//! The arguments of `#[view(...)]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::LitStr;

/// What `#[view(...)]` may say.
#[derive(Default)]
pub struct ViewArgs {
    /// `name = "..."`: serve under this name instead of the function's.
    pub name: Option<LitStr>,
}

pub fn parse(args: TokenStream) -> syn::Result<ViewArgs> {
    let mut parsed = ViewArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if parsed.name.is_some() {
                return Err(meta.error("`name` is given twice"));
            }
            parsed.name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown argument; #[view] takes only `name = \"...\"`"))
        }
    });
    parser.parse2(args)?;
    Ok(parsed)
}
