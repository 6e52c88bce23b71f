use fluxon::db::{Database, Executor, Model};

#[derive(Model)]
struct Product {
    #[field(max_length = 20, unique)]
    sku: String,
    #[field(max_length = 50)]
    name: String,
}

fn upsert(db: &Database, product: &Product) {
    // `name` is not unique: an upsert cannot use it as its conflict target.
    let _ = db.insert_or_update(product, Product::name);
    let _ = db.insert_or_update(product, Product::sku);
}

fn main() {}
