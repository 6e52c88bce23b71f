//! Validation before every write: `#[field(validate = path)]` checks one field
//! (`fn(&T) -> Result<(), impl ToString>`, where `&T` may also be what it derefs to: `&str` for a
//! `String`), `#[model(validate = path)]` the whole row
//! (`fn(&Self, &mut ValidationErrors)`). An insert, bulk insert, upsert, save or column update
//! with a failing value writes nothing and is [`DbError::Invalid`](super::DbError::Invalid)
//! with every problem found, per field: a view can hand them to its client as they are (they
//! serialize), or `?` them into a message for the client.
//!
//! ```
//! use fluxon::db::{Database, DbError, Executor, Model, ValidationErrors};
//!
//! fn not_blank(name: &str) -> Result<(), &'static str> {
//!     if name.trim().is_empty() { Err("must not be blank") } else { Ok(()) }
//! }
//!
//! fn stock_fits(product: &Product, errors: &mut ValidationErrors) {
//!     if product.reserved > product.stock {
//!         errors.add("reserved", "cannot exceed the stock");
//!     }
//! }
//!
//! #[derive(Model)]
//! #[model(validate = stock_fits)]
//! struct Product {
//!     #[field(max_length = 50, validate = not_blank)]
//!     name: String,
//!     stock: u32,
//!     reserved: u32,
//! }
//!
//! # fn main() -> Result<(), DbError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("shop.sqlite3"))?;
//! db.create_tables(&[Product::SCHEMA])?;
//! let bad = Product { name: " ".into(), stock: 1, reserved: 2 };
//! let Err(DbError::Invalid(errors)) = db.insert(&bad) else { panic!("refused") };
//! assert_eq!(errors.fields(), ["name", "reserved"]);
//! assert_eq!(db.check_all::<Product>().count()?, 0);
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field (or, for a problem of the whole row, what the model's check named).
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

/// Every problem a row's validation found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", describe(.errors))]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ValidationErrors {
    /// No problems (yet).
    pub fn new() -> Self {
        ValidationErrors::default()
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// The problems, in the order found.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The fields with problems, in the order found.
    pub fn fields(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.field.as_str()).collect()
    }

    /// The problems of one field.
    pub fn of<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.errors
            .iter()
            .filter(move |e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when nothing was found.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}
