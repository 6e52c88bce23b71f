//! Prefetching: related rows for a set of rows in one statement per level, counted by the
//! database itself (every statement the connection runs, not fluxon's idea of it): SQLite's
//! statement trace, PostgreSQL's statement log.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::models::Backend;
use fluxon::db::{Database, DbError, Executor, ForeignKey, Model, Transaction};
use rusqlite::trace::{TraceEvent, TraceEventCodes};

#[derive(Model, Debug)]
pub struct Author {
    #[field(max_length = 30)]
    pub name: String,
}

#[derive(Model, Debug)]
pub struct Post {
    #[field(on_delete = cascade)]
    pub author: ForeignKey<Author>,
    #[field(max_length = 50)]
    pub title: String,
}

#[derive(Model, Debug)]
pub struct Remark {
    #[field(on_delete = cascade)]
    pub post: ForeignKey<Post>,
    pub text: String,
}

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);
/// The trace counter is one for the process: the tests that read it take turns.
static COUNTING: Mutex<()> = Mutex::new(());

fn count(event: TraceEvent<'_>) {
    if let TraceEvent::Stmt(..) = event {
        STATEMENTS.fetch_add(1, Ordering::SeqCst);
    }
}

/// A test's database and how to count its statements.
struct Counted {
    db: Database,
    /// The PostgreSQL database's URL (its statements are in the server's log).
    url: Option<String>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Counted {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

/// Runs `body` in a transaction and counts the statements it ran; (result, statements).
fn counted<T>(
    db: &Counted,
    mut body: impl FnMut(&Transaction<'_>) -> Result<T, DbError>,
) -> (T, usize) {
    if let Some(url) = &db.url {
        let (out, ran) = db
            .transaction(|tx| {
                let before = crate::postgres::statements_run(url);
                let out = body(tx);
                Ok((out?, crate::postgres::statements_run(url) - before))
            })
            .unwrap();
        return (out, ran);
    }
    let _turn = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    db.transaction(|tx| {
        tx.with_connection(|c| {
            c.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(count));
            Ok(())
        })?;
        let before = STATEMENTS.load(Ordering::SeqCst);
        let out = body(tx);
        let ran = STATEMENTS.load(Ordering::SeqCst) - before;
        tx.with_connection(|c| {
            c.trace_v2(TraceEventCodes::empty(), None);
            Ok(())
        })?;
        Ok((out?, ran))
    })
    .unwrap()
}

/// `authors` authors with `posts` posts each, each post with `remarks` remarks.
fn blog(backend: Backend, authors: usize, posts: usize, remarks: usize) -> Counted {
    let db = counting(backend);
    db.create_tables(&[Author::SCHEMA, Post::SCHEMA, Remark::SCHEMA])
        .unwrap();
    for a in 0..authors {
        let author = db
            .insert(&Author {
                name: format!("a{a}"),
            })
            .unwrap();
        for p in 0..posts {
            let post = db
                .insert(&Post {
                    author: author.into(),
                    title: format!("a{a}p{p}"),
                })
                .unwrap();
            let texts: Vec<Remark> = (0..remarks)
                .map(|r| Remark {
                    post: post.into(),
                    text: format!("a{a}p{p}r{r}"),
                })
                .collect();
            db.insert_many(&texts).unwrap();
        }
    }
    db
}

/// An empty database on `backend` with the blog's tables and the school's.
fn counting(backend: Backend) -> Counted {
    let (place, dir) = crate::models::place(backend);
    let db = Database::open(&place).unwrap();
    db.create_tables(&[Author::SCHEMA, Post::SCHEMA, Remark::SCHEMA])
        .unwrap();
    db.create_tables(&crate::models::ALL).unwrap();
    Counted {
        db,
        url: (backend == Backend::Postgres).then_some(place),
        _dir: dir,
    }
}

fn two_levels_for_fifty_authors_take_three_statements(backend: Backend) {
    let db = blog(backend, 50, 4, 3);
    let (authors, statements) = counted(&db, |tx| {
        tx.check_all::<Author>()
            .order_by(Author::name.asc())
            .prefetch(Post::author.then(Remark::post))
    });
    assert_eq!(statements, 3, "authors, their posts, those posts' remarks");
    assert_eq!(authors.len(), 50);
    for (author, posts) in &authors {
        assert_eq!(posts.len(), 4, "{}", author.name);
        for (post, remarks) in posts {
            assert!(
                post.title.starts_with(&author.name),
                "{} under {}",
                post.title,
                author.name
            );
            assert_eq!(post.author, ForeignKey::new(author.id));
            assert_eq!(remarks.len(), 3);
            for remark in remarks {
                assert!(remark.text.starts_with(&post.title));
                assert_eq!(remark.post, ForeignKey::new(post.id));
            }
        }
    }
    // What one query per row would have cost, for the record: 1 + 50 + 200.
    let (_, one_level) = counted(&db, |tx| tx.check_all::<Author>().prefetch(Post::author));
    assert_eq!(one_level, 2);
}

fn rows_with_nothing_related_get_empty_lists_and_a_filter_narrows_the_parents(backend: Backend) {
    let db = blog(backend, 3, 2, 0);
    let lonely = db.insert(&Author { name: "zed".into() }).unwrap();
    let (authors, statements) = counted(&db, |tx| {
        tx.check(Author::name.ne("a1"))
            .order_by(Author::name.asc())
            .prefetch(Post::author.then(Remark::post))
    });
    assert_eq!(statements, 3);
    let shape: Vec<(&str, usize)> = authors
        .iter()
        .map(|(a, posts)| (a.name.as_str(), posts.len()))
        .collect();
    assert_eq!(shape, [("a0", 2), ("a2", 2), ("zed", 0)]);
    assert_eq!(authors[2].0.id, lonely);
    assert!(authors[0].1.iter().all(|(_, remarks)| remarks.is_empty()));
    // No parents: the parents' statement only.
    let (none, statements) = counted(&db, |tx| {
        tx.check(Author::name.eq("nobody")).prefetch(Post::author)
    });
    assert!(none.is_empty());
    assert_eq!(statements, 1);
}

fn many_to_many_prefetch_is_one_statement(backend: Backend) {
    use crate::models::*;
    let db = counting(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let courses: Vec<i64> = (0..5)
        .map(|i| db.insert(&course(&format!("c{i}"), ada)).unwrap())
        .collect();
    let students: Vec<i64> = (0..20)
        .map(|i| db.insert(&student(&format!("s{i:02}"))).unwrap())
        .collect();
    for (i, s) in students.iter().enumerate() {
        for c in courses.iter().take(i % 5 + 1) {
            db.execute(Course::students.add(*c, *s)).unwrap();
        }
    }
    let (rows, statements) = counted(&db, |tx| {
        tx.check_all::<Course>()
            .order_by(Course::title.asc())
            .prefetch(Course::students)
    });
    assert_eq!(statements, 2);
    let sizes: Vec<usize> = rows.iter().map(|(_, s)| s.len()).collect();
    assert_eq!(sizes, [20, 16, 12, 8, 4]);
    assert!(rows[4]
        .1
        .iter()
        .all(|s| s.name.ends_with('4') || s.name.ends_with('9')));
}

crate::backends!(sync: two_levels_for_fifty_authors_take_three_statements, rows_with_nothing_related_get_empty_lists_and_a_filter_narrows_the_parents, many_to_many_prefetch_is_one_statement);
