use fluxon::db::FieldEnum;

#[derive(FieldEnum)]
enum Status {
    Draft,
    Live { since: u32 },
}

#[derive(FieldEnum)]
#[field_enum(integer)]
enum Priority {
    Low = 1,
    High,
}

fn main() {}
