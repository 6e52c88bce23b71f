//! `fluxon-apps`: the unpublished package that owns the workspace's `examples/` and `tests/`.
//!
//! It has no code of its own; the framework lives in the `fluxon` crate.
