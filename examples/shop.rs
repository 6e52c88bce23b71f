//! A shop: customers, products, orders and their lines. Upserted products with validation,
//! orders placed in one transaction that never oversells (stock decremented by the database),
//! a typed domain error the client matches on, orders with their lines prefetched, a sales report
//! from aggregates, and a typed reverse request telling a customer their order shipped.
//!
//! `cargo run --example shop` runs the server and two customers in one process, prints each
//! step, checks what it prints, and exits 0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context};
use fluxon::db::{
    count_of, count_rows, AsyncDatabase, DbError, Executor, FieldEnum, ForeignKey, Json, Model,
    OffsetDateTime, Password, ValidationErrors,
};
use fluxon::{reverse, view, views, AsyncServer, CallError, ConnectionHandler, Request, Router};
use serde::{Deserialize, Serialize};

// ---- Models ----------------------------------------------------------------------------------

#[derive(Model, Debug)]
#[model(authorized_user)]
struct Customer {
    #[field(max_length = 30, unique)]
    username: String,
    password: Password,
}

fn not_blank(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        Err("must not be blank")
    } else {
        Ok(())
    }
}

fn a_price(cents: &i64) -> Result<(), &'static str> {
    if *cents > 0 {
        Ok(())
    } else {
        Err("must be above zero")
    }
}

#[derive(FieldEnum, Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum OrderStatus {
    Paid,
    Shipped,
}

#[derive(Model, Debug, Clone, Serialize, Deserialize)]
struct Product {
    #[field(max_length = 20, unique, validate = not_blank)]
    sku: String,
    #[field(max_length = 80, validate = not_blank)]
    name: String,
    #[field(validate = a_price)]
    cents: i64,
    stock: u32,
    tags: Json<Vec<String>>,
}

#[derive(Model, Debug)]
struct Order {
    #[field(on_delete = cascade)]
    customer: ForeignKey<Customer>,
    status: OrderStatus,
    #[field(auto_now_add)]
    placed: OffsetDateTime,
}

fn some_items(quantity: &u32) -> Result<(), &'static str> {
    if *quantity == 0 {
        Err("order at least one")
    } else {
        Ok(())
    }
}

#[derive(Model, Debug)]
struct OrderLine {
    #[field(on_delete = cascade)]
    order: ForeignKey<Order>,
    #[field(on_delete = protect)]
    product: ForeignKey<Product>,
    #[field(validate = some_items)]
    quantity: u32,
    cents: i64,
}

// ---- What the client sees --------------------------------------------------------------------

/// The shop's own errors: the client gets them typed, as `CallError::View(ShopError::..)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ShopError {
    LogInFirst,
    NoSuchProduct(String),
    OutOfStock {
        sku: String,
        left: u32,
    },
    Invalid(ValidationErrors),
    /// A fault of the shop's own (the server's log has it).
    Unavailable,
}

impl From<DbError> for ShopError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Invalid(errors) => ShopError::Invalid(errors),
            other => {
                tracing::error!(error = %other, "database");
                ShopError::Unavailable
            }
        }
    }
}

/// One order with its lines, as a customer reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderView {
    id: i64,
    status: OrderStatus,
    lines: Vec<(String, u32, i64)>,
}

/// The sales report: (SKU, units, takings) per product, best sellers first; (customer, orders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    sold: Vec<(String, i64, i64)>,
    orders_per_customer: Vec<(String, i64)>,
}

/// What a customer's client is told when an order ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shipped {
    order: i64,
    items: u32,
}

/// Tells a customer's connected clients that an order shipped; they answer that they saw it.
#[reverse]
async fn order_shipped(notice: Shipped) -> bool;

// ---- Views -----------------------------------------------------------------------------------

#[view]
async fn signup(req: Request, (username, password): (String, String)) -> Result<i64, ShopError> {
    let password = req
        .hash_password(&password)
        .await
        .map_err(|_| ShopError::Unavailable)?;
    let db = req.db().map_err(|_| ShopError::Unavailable)?;
    Ok(db.insert(&Customer { username, password }).await?)
}

#[view]
async fn login(req: Request, (username, password): (String, String)) -> Result<i64, ShopError> {
    req.login_with_password::<Customer>(&username, &password)
        .await
        .map_err(|_| ShopError::LogInFirst)
}

/// Adds a product, or updates the one with the same SKU (one statement).
#[view]
async fn stock_product(req: Request, product: Product) -> Result<i64, ShopError> {
    req.user_id().ok_or(ShopError::LogInFirst)?;
    let db = req.db().map_err(|_| ShopError::Unavailable)?;
    Ok(db.insert_or_update(&product, Product::sku).await?)
}

/// Places an order in one transaction: each line takes its stock with one statement that never
/// goes below zero; any line short of stock undoes the whole order.
#[view]
async fn place_order(req: Request, lines: Vec<(String, u32)>) -> Result<i64, ShopError> {
    let customer = req.user_id().ok_or(ShopError::LogInFirst)?;
    let db = req.db().map_err(|_| ShopError::Unavailable)?;
    // The body may run again (on PostgreSQL, after losing to a concurrent order): it reads
    // `lines`, it does not consume them.
    db.transaction_with(move |tx| {
        let order = tx.insert(&Order {
            customer: customer.into(),
            status: OrderStatus::Paid,
            placed: OffsetDateTime::UNIX_EPOCH,
        })?;
        let mut rows = Vec::new();
        for &(ref sku, quantity) in &lines {
            let product = tx
                .check(Product::sku.eq(sku.as_str()))
                .first()?
                .ok_or_else(|| ShopError::NoSuchProduct(sku.clone()))?;
            let taken = tx.update(
                vec![Product::stock.set_expr(Product::stock - quantity)],
                Product::id.eq(product.id) & Product::stock.ge(quantity),
            )?;
            if taken == 0 {
                let left = product.stock;
                let sku = sku.clone();
                return Err(ShopError::OutOfStock { sku, left });
            }
            rows.push(OrderLine {
                order: order.into(),
                product: product.id.into(),
                quantity,
                cents: product.cents * i64::from(quantity),
            });
        }
        tx.insert_many(&rows)?;
        Ok(order)
    })
    .await
}

/// The customer's orders, each with its lines and their products: three statements in all.
#[view]
async fn my_orders(req: Request) -> Result<Vec<OrderView>, ShopError> {
    let customer = req.user_id().ok_or(ShopError::LogInFirst)?;
    let db = req.db().map_err(|_| ShopError::Unavailable)?;
    let orders = db
        .check(Order::customer.eq(customer))
        .order_by(Order::id.asc())
        .prefetch(OrderLine::order)
        .await?;
    let products = db.check_all::<Product>().all().await?;
    let sku = |id: &ForeignKey<Product>| {
        products
            .iter()
            .find(|p| p.id == *id.key())
            .map_or_else(String::new, |p| p.sku.clone())
    };
    Ok(orders
        .into_iter()
        .map(|(order, lines)| OrderView {
            id: order.id,
            status: order.status,
            lines: lines
                .iter()
                .map(|l| (sku(&l.product), l.quantity, l.cents))
                .collect(),
        })
        .collect())
}

/// Units and takings per product, best sellers first; and the orders per customer.
#[view]
async fn sales_report(req: Request) -> Result<Report, ShopError> {
    let db = req.db().map_err(|_| ShopError::Unavailable)?;
    let sold = db
        .check_all::<OrderLine>()
        .group_by(OrderLine::product)
        .order_by(OrderLine::quantity.sum().desc())
        .columns((
            OrderLine::product,
            OrderLine::quantity.sum(),
            OrderLine::cents.sum(),
        ))
        .await?;
    let products = db.check_all::<Product>().all().await?;
    let by_product = sold
        .into_iter()
        .map(|(product, units, takings)| {
            let sku = products
                .iter()
                .find(|p| p.id == *product.key())
                .map_or_else(String::new, |p| p.sku.clone());
            (sku, units.unwrap_or(0), takings.unwrap_or(0))
        })
        .collect();
    let per_customer = db
        .check_all::<Customer>()
        .order_by(Customer::username.asc())
        .columns((Customer::username, count_of(Order::customer)))
        .await?;
    Ok(Report {
        sold: by_product,
        orders_per_customer: per_customer,
    })
}

/// Marks an order shipped and tells its customer's clients (typed: an `Shipped` in, a `bool` out).
#[view]
async fn ship(req: Request, order: i64) -> Result<bool, ShopError> {
    let db = req.db().map_err(|_| ShopError::Unavailable)?;
    let mut row = db
        .get::<Order>(order)
        .await?
        .ok_or(ShopError::Unavailable)?;
    row.status = OrderStatus::Shipped;
    db.save(&row).await?;
    let (items,) = db
        .check(OrderLine::order.eq(order))
        .aggregate((OrderLine::quantity.sum(),))
        .await?;
    let notice = Shipped {
        order,
        items: u32::try_from(items.unwrap_or(0)).unwrap_or(u32::MAX),
    };
    let customer = *row.customer.key();
    Ok(req
        .server()
        .reverse_call(customer, order_shipped, &notice, Duration::from_secs(5))
        .await
        .unwrap_or(false))
}

// ---- A run -----------------------------------------------------------------------------------

fn product(sku: &str, name: &str, cents: i64, stock: u32, tags: &[&str]) -> Product {
    Product {
        sku: sku.into(),
        name: name.into(),
        cents,
        stock,
        tags: Json(tags.iter().map(|t| t.to_string()).collect()),
    }
}

async fn customer(addr: &str, name: &str) -> anyhow::Result<ConnectionHandler> {
    let conn = ConnectionHandler::connect(addr).await?;
    let secret = format!("{name}-secret-password");
    conn.call(signup, &(name.to_owned(), secret.clone()))
        .await?;
    conn.call(login, &(name.to_owned(), secret)).await?;
    Ok(conn)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = AsyncDatabase::open(dir.path().join("shop.sqlite3"))?;
    // Listed in any order: referenced tables are made first.
    db.create_tables(&fluxon::models![OrderLine, Order, Product, Customer])
        .await?;
    let router = Router::new().state(db.clone()).mapping(views![
        signup,
        login,
        stock_product,
        place_order,
        my_orders,
        sales_report,
        ship
    ])?;
    let server = AsyncServer::new(0).router(router).start().await?;
    let addr = server.local_addr().to_string();

    let ann = customer(&addr, "ann").await?;
    let bob = customer(&addr, "bob").await?;
    let told = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&told);
    ann.on(order_shipped, move |notice: Shipped| {
        println!(
            "  [ann's screen] order {} shipped, {} items",
            notice.order, notice.items
        );
        if let Ok(mut told) = seen.lock() {
            told.push(notice);
        }
        async { true }
    });

    for p in [
        product("LAMP", "Desk lamp", 2_499, 5, &["light"]),
        product("MUG", "Mug", 899, 10, &["kitchen", "gift"]),
    ] {
        ann.call(stock_product, &p).await?;
    }
    // The same SKU again: the row is updated, not doubled.
    let restocked = ann
        .call(
            stock_product,
            &product("MUG", "Mug, blue", 999, 20, &["kitchen"]),
        )
        .await?;
    println!("stock MUG again -> the same product {restocked}, now 20 at 9.99");
    match ann
        .call(stock_product, &product(" ", "Nothing", 0, 1, &[]))
        .await
    {
        Err(CallError::View(ShopError::Invalid(errors))) => {
            println!("stock a blank product -> refused: {errors}");
            ensure!(errors.fields() == ["sku", "cents"], "{errors}");
        }
        other => anyhow::bail!("a blank product must be refused: {other:?}"),
    }

    let first = ann
        .call(
            place_order,
            &vec![("LAMP".to_owned(), 2), ("MUG".to_owned(), 3)],
        )
        .await?;
    bob.call(place_order, &vec![("MUG".to_owned(), 1)]).await?;
    println!("ann orders 2 LAMP + 3 MUG -> order {first}");
    match bob
        .call(
            place_order,
            &vec![("LAMP".to_owned(), 4), ("MUG".to_owned(), 1)],
        )
        .await
    {
        Err(CallError::View(ShopError::OutOfStock { sku, left })) => {
            println!("bob orders 4 LAMP -> out of stock: {sku}, {left} left (nothing taken)");
            ensure!(sku == "LAMP" && left == 3, "{sku} {left}");
        }
        other => anyhow::bail!("4 lamps of 3 must be refused: {other:?}"),
    }
    let mugs = db
        .check(Product::sku.eq("MUG"))
        .first()
        .await?
        .context("the mug")?;
    ensure!(
        mugs.stock == 16,
        "the refused order took nothing: {}",
        mugs.stock
    );

    let orders = ann.call(my_orders, &()).await?;
    println!("ann's orders -> {orders:?}");
    ensure!(
        orders.len() == 1 && orders[0].lines.len() == 2,
        "{orders:?}"
    );

    let report = ann.call(sales_report, &()).await?;
    println!("sales -> {report:?}");
    ensure!(
        report.sold[0] == ("MUG".to_owned(), 4, 4 * 999),
        "{report:?}"
    );

    let saw = bob.call(ship, &first).await?;
    println!("ship order {first} -> ann's client saw it: {saw}");
    ensure!(saw, "ann's client answers");
    ensure!(told.lock().map(|t| t.len()).unwrap_or(0) == 1, "one notice");
    let (orders_in_shop,) = db.check_all::<Order>().aggregate((count_rows(),)).await?;
    ensure!(orders_in_shop == 2, "{orders_in_shop}");

    ann.close().await;
    bob.close().await;
    server.shutdown().await;
    println!("done");
    Ok(())
}
