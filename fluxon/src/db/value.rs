//! How Rust field types become SQL values and back.

use super::sql::{Value, ValueRef};
use rust_decimal::Decimal;
use time::{Date, OffsetDateTime, Time};

use super::schema::{ColumnSchema, FieldKind};
use super::DbError;

/// A Rust type that can be stored in a column. Implemented for the field types the derive knows;
/// `Option<T>` is the nullable form of any of them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a column",
    note = "model fields are String, i32, i64, u32, f64, bool, Decimal, Date, Time, OffsetDateTime, Password, ForeignKey<M>, OneToOne<M>, or an Option of one of them"
)]
pub trait SqlType: Sized + Send + 'static {
    /// The field kind a plain field of this type gets (attributes may refine it: `max_length`
    /// turns `Text` into `Char`).
    const KIND: FieldKind;
    /// Whether NULL is allowed (only `Option`).
    const NULLABLE: bool = false;
    /// The value to bind for this column.
    fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError>;
    /// The field from a stored value.
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError>;
}

/// The type a column compares with: `T` for a `T` or an `Option<T>` column.
pub trait ColumnType: SqlType {
    /// The non-optional type.
    type Inner: SqlType;
}

/// What a column of type `T` accepts: a `T`, and the obvious conversions (`&str` for `String`, a
/// bare key for a reference, a plain value for an `Option` column). Narrower than `Into`, so an
/// integer literal takes the column's own integer type.
#[diagnostic::on_unimplemented(
    message = "a column of `{T}` cannot be compared with or set to a `{Self}`",
    label = "expected a value of the column's type, `{T}`"
)]
pub trait IntoColumnValue<T> {
    /// The conversion.
    fn into_column_value(self) -> T;
}

impl<T> IntoColumnValue<T> for T {
    fn into_column_value(self) -> T {
        self
    }
}

impl IntoColumnValue<String> for &str {
    fn into_column_value(self) -> String {
        self.to_owned()
    }
}

impl IntoColumnValue<Option<String>> for &str {
    fn into_column_value(self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl<T: ColumnType> IntoColumnValue<Option<T>> for T {
    fn into_column_value(self) -> Option<T> {
        Some(self)
    }
}

fn decode_error(column: &ColumnSchema, expected: &'static str, reason: impl ToString) -> DbError {
    DbError::Decode {
        column: column.name,
        expected,
        reason: reason.to_string(),
    }
}

macro_rules! plain_column_type {
    ($($ty:ty),*) => {$(
        impl ColumnType for $ty {
            type Inner = $ty;
        }
    )*};
}

plain_column_type!(
    String,
    i32,
    i64,
    u32,
    f64,
    bool,
    Decimal,
    Date,
    Time,
    OffsetDateTime
);

impl SqlType for String {
    const KIND: FieldKind = FieldKind::Text;
    #[inline]
    fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
        if let FieldKind::Char { max_length } = column.kind {
            let chars = self.chars().count();
            if chars > max_length as usize {
                return Err(DbError::InvalidValue {
                    column: column.name,
                    reason: format!("{chars} characters, more than max_length {max_length}"),
                });
            }
        }
        Ok(Value::Text(self.clone()))
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        value
            .as_str()
            .map(str::to_owned)
            .map_err(|e| decode_error(column, "string", e))
    }
}

#[inline]
fn integer(
    value: ValueRef<'_>,
    column: &ColumnSchema,
    expected: &'static str,
) -> Result<i64, DbError> {
    value
        .as_i64()
        .map_err(|e| decode_error(column, expected, e))
}

impl SqlType for i64 {
    const KIND: FieldKind = FieldKind::BigInteger;
    #[inline]
    fn to_sql(&self, _: &ColumnSchema) -> Result<Value, DbError> {
        Ok(Value::Integer(*self))
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        integer(value, column, "i64")
    }
}

impl SqlType for i32 {
    const KIND: FieldKind = FieldKind::Integer;
    #[inline]
    fn to_sql(&self, _: &ColumnSchema) -> Result<Value, DbError> {
        Ok(Value::Integer(i64::from(*self)))
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        let n = integer(value, column, "i32")?;
        i32::try_from(n).map_err(|e| decode_error(column, "i32", e))
    }
}

impl SqlType for u32 {
    const KIND: FieldKind = FieldKind::PositiveInteger;
    #[inline]
    fn to_sql(&self, _: &ColumnSchema) -> Result<Value, DbError> {
        Ok(Value::Integer(i64::from(*self)))
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        let n = integer(value, column, "u32")?;
        u32::try_from(n).map_err(|e| decode_error(column, "u32", e))
    }
}

impl SqlType for f64 {
    const KIND: FieldKind = FieldKind::Float;
    #[inline]
    fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
        if self.is_nan() {
            return Err(DbError::InvalidValue {
                column: column.name,
                reason: "NaN cannot be stored".to_owned(),
            });
        }
        Ok(Value::Real(*self))
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        match value {
            ValueRef::Integer(n) => Ok(n as f64),
            other => other.as_f64().map_err(|e| decode_error(column, "f64", e)),
        }
    }
}

impl SqlType for bool {
    const KIND: FieldKind = FieldKind::Boolean;
    #[inline]
    fn to_sql(&self, _: &ColumnSchema) -> Result<Value, DbError> {
        Ok(Value::Integer(i64::from(*self)))
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        Ok(integer(value, column, "bool")? != 0)
    }
}

/// Decimals are stored as an exact integer count of `10^-decimal_places`.
impl SqlType for Decimal {
    const KIND: FieldKind = FieldKind::Decimal {
        max_digits: 18,
        decimal_places: 2,
    };
    #[inline]
    fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
        let FieldKind::Decimal {
            max_digits,
            decimal_places,
        } = column.kind
        else {
            return Err(DbError::InvalidValue {
                column: column.name,
                reason: "not a decimal column".to_owned(),
            });
        };
        let invalid = |reason: String| DbError::InvalidValue {
            column: column.name,
            reason,
        };
        let value = self.normalize();
        if value.scale() > decimal_places {
            return Err(invalid(format!(
                "{self} has more than {decimal_places} decimal places"
            )));
        }
        let mut scaled = value;
        scaled.rescale(decimal_places);
        let units = scaled.mantissa();
        let digits = units.unsigned_abs().checked_ilog10().map_or(1, |d| d + 1);
        if digits > max_digits {
            return Err(invalid(format!("{self} has more than {max_digits} digits")));
        }
        i64::try_from(units).map_err(|_| invalid(format!("{self} is too large")))?;
        Ok(Value::Decimal(scaled))
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        let places = match column.kind {
            FieldKind::Decimal { decimal_places, .. } => decimal_places,
            _ => 0,
        };
        // PostgreSQL's NUMERIC arrives as its text (unless whole); SQLite's as a count of units.
        if let ValueRef::Text(_) = value {
            let text = value
                .as_str()
                .map_err(|e| decode_error(column, "decimal", e))?;
            return text
                .parse::<Decimal>()
                .map_err(|e| decode_error(column, "decimal", e));
        }
        let units = integer(value, column, "decimal")?;
        Decimal::try_from_i128_with_scale(i128::from(units), places)
            .map_err(|e| decode_error(column, "decimal", e))
    }
}

macro_rules! text_time {
    ($ty:ty, $kind:expr, $name:literal) => {
        impl SqlType for $ty {
            const KIND: FieldKind = $kind;
            fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
                use rusqlite::types::{ToSql, ToSqlOutput};
                match ToSql::to_sql(self) {
                    Ok(ToSqlOutput::Owned(value)) => Ok(value.into()),
                    Ok(ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(text))) => {
                        Ok(Value::Text(String::from_utf8_lossy(text).into_owned()))
                    }
                    Ok(_) => Err(decode_error(column, $name, "unexpected encoding")),
                    Err(err) => Err(DbError::Sqlite(err)),
                }
            }
            fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
                <$ty as rusqlite::types::FromSql>::column_result(value.to_driver())
                    .map_err(|e| decode_error(column, $name, e))
            }
        }
    };
}

text_time!(Date, FieldKind::Date, "date");
text_time!(Time, FieldKind::Time, "time");
text_time!(OffsetDateTime, FieldKind::DateTime, "date-time");

impl<T: ColumnType> SqlType for Option<T> {
    const KIND: FieldKind = T::KIND;
    const NULLABLE: bool = true;
    #[inline]
    fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
        match self {
            Some(value) => value.to_sql(column),
            None => Ok(Value::Null),
        }
    }
    #[inline]
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        match value {
            ValueRef::Null => Ok(None),
            value => T::from_sql(value, column).map(Some),
        }
    }
}

impl<T: ColumnType> ColumnType for Option<T> {
    type Inner = T;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn decimal_column(max_digits: u32, decimal_places: u32) -> ColumnSchema {
        ColumnSchema::new(
            "price",
            FieldKind::Decimal {
                max_digits,
                decimal_places,
            },
        )
    }

    #[test]
    fn decimals_are_exact_scaled_integers() {
        let column = decimal_column(6, 2);
        let price = Decimal::from_str("1234.5").unwrap();
        // At the column's scale: SQLite stores its units (123450), PostgreSQL the NUMERIC.
        let bound = price.to_sql(&column).unwrap();
        assert_eq!(bound, Value::Decimal(Decimal::from_str("1234.50").unwrap()));
        let Value::Decimal(scaled) = bound else {
            unreachable!()
        };
        assert_eq!((scaled.mantissa(), scaled.scale()), (123_450, 2));
        let back = Decimal::from_sql(ValueRef::Integer(123_450), &column).unwrap();
        assert_eq!(back, price);
        assert_eq!(back.to_string(), "1234.50");
        assert!(
            Decimal::from_str("0.001").unwrap().to_sql(&column).is_err(),
            "3 places"
        );
        assert!(
            Decimal::from_str("12345.6")
                .unwrap()
                .to_sql(&column)
                .is_err(),
            "7 digits"
        );
        let negative = Decimal::from_str("-0.1").unwrap().to_sql(&column).unwrap();
        let Value::Decimal(negative) = negative else {
            unreachable!()
        };
        assert_eq!((negative.mantissa(), negative.scale()), (-10, 2));
    }

    #[test]
    fn char_length_is_checked_in_characters() {
        let column = ColumnSchema::new("name", FieldKind::Char { max_length: 3 });
        assert!("äöü".to_owned().to_sql(&column).is_ok());
        assert!("abcd".to_owned().to_sql(&column).is_err());
    }

    #[test]
    fn options_are_null() {
        let column = ColumnSchema::new("n", FieldKind::BigInteger);
        assert_eq!(None::<i64>.to_sql(&column).unwrap(), Value::Null);
        assert_eq!(
            Option::<i64>::from_sql(ValueRef::Null, &column).unwrap(),
            None
        );
        assert_eq!(
            Option::<i64>::from_sql(ValueRef::Integer(4), &column).unwrap(),
            Some(4)
        );
    }
}
