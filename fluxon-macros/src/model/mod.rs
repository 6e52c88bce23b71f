//! `#[derive(Model)]`: parse (`ast`, `attr`) -> validate (`valid`) -> expand (`expand`).

mod ast;
mod attr;
mod expand;
mod valid;

pub use expand::derive;
