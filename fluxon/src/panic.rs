//! The text of a caught panic, for error replies and error values (a view that panicked, a
//! transaction closure that panicked).

/// The panic's message, when it was a string (as `panic!("...")` makes it).
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}
