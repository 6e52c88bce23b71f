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
