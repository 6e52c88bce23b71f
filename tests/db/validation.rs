//! Validation before every write, per field and for the whole row, and what a view's client
//! sees of it.

use crate::models::Backend;
use fluxon::db::{AsyncDatabase, DbError, Executor, Model, ValidationErrors};
use fluxon::{
    view, views, AsyncServer, CallError, ConnectionHandler, ErrorCode, Request, Router, ViewError,
};

fn not_blank(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        Err("must not be blank")
    } else {
        Ok(())
    }
}

fn a_price(cents: &i64) -> Result<(), String> {
    if *cents <= 0 {
        Err(format!("{cents} is not a price"))
    } else {
        Ok(())
    }
}

fn reserved_fits(product: &Product, errors: &mut ValidationErrors) {
    if product.reserved > product.stock {
        errors.add("reserved", "cannot exceed the stock");
    }
}

#[derive(Model, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[model(validate = reserved_fits)]
pub struct Product {
    #[field(max_length = 20, unique, validate = not_blank)]
    pub sku: String,
    #[field(validate = a_price)]
    pub cents: i64,
    pub stock: u32,
    pub reserved: u32,
}

fn product(sku: &str, cents: i64) -> Product {
    Product {
        sku: sku.into(),
        cents,
        stock: 5,
        reserved: 0,
    }
}

async fn shop(backend: Backend) -> (AsyncDatabase, tempfile::TempDir) {
    let (place, dir) = crate::models::place(backend);
    let db = AsyncDatabase::open(&place).unwrap();
    db.create_tables(&[Product::SCHEMA]).await.unwrap();
    (db, dir)
}

fn invalid<T: std::fmt::Debug>(result: Result<T, DbError>) -> ValidationErrors {
    match result {
        Err(DbError::Invalid(errors)) => errors,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn every_write_path_validates_and_writes_nothing_on_failure(backend: Backend) {
    let (db, _dir) = shop(backend).await;
    // Every problem at once, per field and for the row.
    let mut bad = product(" ", -3);
    bad.reserved = 9;
    let errors = invalid(db.insert(&bad).await);
    assert_eq!(errors.fields(), ["sku", "cents", "reserved"]);
    assert_eq!(
        errors.of("cents").collect::<Vec<_>>(),
        ["-3 is not a price"]
    );
    // A bulk insert with one bad row keeps none.
    let batch = [product("a", 100), product("b", 0), product("c", 300)];
    let errors = invalid(db.insert_many(&batch).await);
    assert_eq!(errors.fields(), ["cents"]);
    // An upsert, a save, and a column update: the same checks.
    invalid(db.insert_or_update(&product("", 5), Product::sku).await);
    assert_eq!(
        db.check_all::<Product>().count().await.unwrap(),
        0,
        "nothing written"
    );
    let id = db.insert(&product("lamp", 1999)).await.unwrap();
    let mut row = db.get::<Product>(id).await.unwrap().unwrap();
    row.reserved = 6;
    assert_eq!(invalid(db.save(&row).await).fields(), ["reserved"]);
    let errors = invalid(
        db.update(vec![Product::cents.set(-1)], Product::id.eq(id))
            .await,
    );
    assert_eq!(errors.fields(), ["cents"]);
    let back = db.get::<Product>(id).await.unwrap().unwrap();
    assert_eq!(back.fields, product("lamp", 1999), "unchanged");
    // Good values pass every path.
    db.update(vec![Product::cents.set(2499)], Product::id.eq(id))
        .await
        .unwrap();
    row.reserved = 1;
    row.cents = 2499;
    db.save(&row).await.unwrap();
}

/// The client gets the field errors typed.
#[view]
async fn add_product(req: Request, p: Product) -> Result<i64, ValidationErrors> {
    let db = req.db().map_err(|_| ValidationErrors::new())?;
    match db.insert(&p).await {
        Ok(id) => Ok(id),
        Err(DbError::Invalid(errors)) => Err(errors),
        Err(other) => {
            let mut errors = ValidationErrors::new();
            errors.add("product", other.to_string());
            Err(errors)
        }
    }
}

/// The client gets the field errors as a message, through `?`.
#[view]
async fn add_product_simply(req: Request, p: Product) -> Result<i64, ViewError> {
    Ok(req.db()?.insert(&p).await?)
}

async fn a_views_client_sees_the_field_errors(backend: Backend) {
    let (db, _dir) = shop(backend).await;
    let router = Router::new()
        .state(db.clone())
        .mapping(views![add_product, add_product_simply])
        .unwrap();
    let server = AsyncServer::new(0).router(router).start().await.unwrap();
    let conn = ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .unwrap();
    match conn.call(add_product, &product("", 10)).await {
        Err(CallError::View(errors)) => assert_eq!(errors.fields(), ["sku"]),
        other => panic!("expected typed field errors, got {other:?}"),
    }
    match conn.call(add_product_simply, &product("x", -1)).await {
        Err(CallError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::ViewFailed);
            assert!(message.contains("cents: -1 is not a price"), "{message}");
        }
        other => panic!("expected a view failure, got {other:?}"),
    }
    assert!(conn.call(add_product, &product("ok", 10)).await.unwrap() > 0);
    conn.close().await;
    server.shutdown().await;
}

crate::backends!(sync: ; async: every_write_path_validates_and_writes_nothing_on_failure, a_views_client_sees_the_field_errors);
