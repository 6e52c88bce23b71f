use fluxon::db::Model;

#[derive(Model)]
#[model(unique(sku, warehose), unique(sku))]
struct Stock {
    sku: String,
    warehouse: String,
}

fn main() {
    let _ = Stock::SCHEMA;
}
