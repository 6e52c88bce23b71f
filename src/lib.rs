//! `fluxon-apps`: the unpublished package that owns the workspace's `examples/`, `tests/` and the
//! repository's `migrations/`. Its library holds the example apps' models; its binary is the
//! example apps' command line (`cargo run -- makemigrations`, `cargo run -- migrate`, ...).

pub mod school;
