//! The same two tables across model versions (each module is one version of the app).

#![allow(dead_code)]

pub mod v1 {
    use fluxon::db::{ForeignKey, Model};

    #[derive(Model, Debug)]
    #[model(table = "author")]
    pub struct Author {
        #[field(max_length = 50)]
        pub name: String,
    }

    #[derive(Model, Debug)]
    #[model(table = "book")]
    pub struct Book {
        #[field(max_length = 100)]
        pub title: String,
        #[field(on_delete = cascade)]
        pub author: ForeignKey<Author>,
    }

    pub const MODELS: [fluxon::db::TableSchema; 2] = [Author::SCHEMA, Book::SCHEMA];
}

/// Adds a field with a default (in place).
pub mod v2 {
    use fluxon::db::{ForeignKey, Model};

    #[derive(Model, Debug)]
    #[model(table = "author")]
    pub struct Author {
        #[field(max_length = 50)]
        pub name: String,
        #[field(max_length = 2, default = "NZ")]
        pub country: String,
    }

    #[derive(Model, Debug)]
    #[model(table = "book")]
    pub struct Book {
        #[field(max_length = 100)]
        pub title: String,
        #[field(on_delete = cascade)]
        pub author: ForeignKey<Author>,
    }

    pub const MODELS: [fluxon::db::TableSchema; 2] = [Author::SCHEMA, Book::SCHEMA];
}

/// Drops the field again: the parent table is rebuilt while books point at it.
pub mod v3 {
    pub use super::v1::{Author, Book, MODELS};
}

/// Renames a field (declared, so no question is asked) and widens it (a type change).
pub mod v4 {
    use fluxon::db::{ForeignKey, Model};

    #[derive(Model, Debug)]
    #[model(table = "author")]
    pub struct Author {
        #[field(max_length = 200, renamed_from = "name")]
        pub full_name: String,
    }

    #[derive(Model, Debug)]
    #[model(table = "book")]
    pub struct Book {
        #[field(max_length = 100)]
        pub title: String,
        #[field(on_delete = cascade)]
        pub author: ForeignKey<Author>,
    }

    pub const MODELS: [fluxon::db::TableSchema; 2] = [Author::SCHEMA, Book::SCHEMA];
}

/// Adds a nullable foreign key (in place).
pub mod v5 {
    use fluxon::db::{ForeignKey, Model};

    pub use super::v4::Author;

    #[derive(Model, Debug)]
    #[model(table = "book")]
    pub struct Book {
        #[field(max_length = 100)]
        pub title: String,
        #[field(on_delete = cascade)]
        pub author: ForeignKey<Author>,
        #[field(on_delete = set_null)]
        pub editor: Option<ForeignKey<Author>>,
    }

    pub const MODELS: [fluxon::db::TableSchema; 2] = [Author::SCHEMA, Book::SCHEMA];
}

/// Adds a many-to-many relation through a join model.
pub mod v6 {
    use fluxon::db::{ForeignKey, ManyToMany, Model};

    pub use super::v4::Author;

    #[derive(Model, Debug)]
    #[model(table = "book")]
    pub struct Book {
        #[field(max_length = 100)]
        pub title: String,
        #[field(on_delete = cascade)]
        pub author: ForeignKey<Author>,
        #[field(on_delete = set_null)]
        pub editor: Option<ForeignKey<Author>>,
        pub tags: ManyToMany<Tag, BookTag>,
    }

    #[derive(Model, Debug)]
    #[model(table = "tag")]
    pub struct Tag {
        #[field(max_length = 20, unique)]
        pub label: String,
    }

    #[derive(Model, Debug)]
    #[model(table = "book_tag")]
    pub struct BookTag {
        #[field(on_delete = cascade)]
        pub book: ForeignKey<Book>,
        #[field(on_delete = cascade)]
        pub tag: ForeignKey<Tag>,
    }

    pub const MODELS: [fluxon::db::TableSchema; 4] =
        [Author::SCHEMA, Book::SCHEMA, Tag::SCHEMA, BookTag::SCHEMA];
}

/// Drops the tag models.
pub mod v7 {
    pub use super::v5::{Author, Book, MODELS};
}

/// A table whose column changes type, gains a unique constraint, and is renamed with its table.
pub mod retype {
    pub mod before {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "edition")]
        pub struct Edition {
            pub number: i32,
            #[field(max_length = 20)]
            pub code: String,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Edition::SCHEMA];
    }

    pub mod after {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "printing", renamed_from = "edition")]
        pub struct Printing {
            /// Was an i32.
            pub number: String,
            #[field(max_length = 20, unique)]
            pub code: String,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Printing::SCHEMA];
    }
}

/// The same table with and without an index.
pub mod indexed {
    pub mod without {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "event")]
        pub struct Event {
            #[field(max_length = 40)]
            pub kind: String,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Event::SCHEMA];
    }

    pub mod with {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "event")]
        pub struct Event {
            #[field(max_length = 40, index)]
            pub kind: String,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Event::SCHEMA];
    }
}

/// `indexed::with`'s table under a new name, with its index and then without.
pub mod moved {
    pub mod with {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "occurrence", renamed_from = "event", unique(kind, note))]
        pub struct Occurrence {
            #[field(max_length = 40, index)]
            pub kind: String,
            #[field(max_length = 40, default = "")]
            pub note: String,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Occurrence::SCHEMA];
    }

    pub mod before {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "event", unique(kind, note))]
        pub struct Event {
            #[field(max_length = 40, index)]
            pub kind: String,
            #[field(max_length = 40, default = "")]
            pub note: String,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Event::SCHEMA];
    }

    pub mod without {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "occurrence")]
        pub struct Occurrence {
            #[field(max_length = 40)]
            pub kind: String,
            #[field(max_length = 40, default = "")]
            pub note: String,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Occurrence::SCHEMA];
    }
}
