//! Migrations end to end: a sequence of model versions, each generated into real files and applied
//! with refinery to a real SQLite file holding rows.

mod versions;

mod history;
mod repository;
mod sequence;
