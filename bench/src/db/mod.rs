//! The database contenders: raw rusqlite, Diesel and fluxon (sync and async) doing the same five
//! operations on the same schema, each on its own SQLite file with the same settings (WAL,
//! synchronous=NORMAL, foreign_keys=ON, busy_timeout), prepared statements cached.

pub mod bulk;
pub mod concurrency;
pub mod diesel_side;
pub mod fluxon_side;
pub mod rusqlite_side;

/// The PRAGMAs every contender's connection runs.
pub const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                           PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

/// The schema, as each contender's own tooling would create it (fluxon's comes from its models;
/// this one matches it column for column).
pub const SCHEMA: &str = "
CREATE TABLE teacher (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE CHECK (length(name) <= 50)
);
CREATE TABLE course (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL CHECK (length(title) <= 100),
    teacher INTEGER NOT NULL REFERENCES teacher (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    seats INTEGER NOT NULL CHECK (seats >= 0)
);
CREATE INDEX course_teacher_idx ON course (teacher);
";

/// Teachers seeded before measuring.
pub const TEACHERS: i64 = 10;
/// Courses seeded before measuring (reads load this many).
pub const COURSES: i64 = 1000;

/// One operation of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert one course (autocommit).
    InsertOne,
    /// Insert 100 courses in one transaction.
    Insert100,
    /// Select one course by id.
    SelectById,
    /// Load 1,000 courses.
    Load1000,
    /// Load 1,000 courses joined with their teachers.
    Join1000,
}

impl Op {
    /// Every operation, in table order.
    pub const ALL: [Op; 5] = [
        Op::InsertOne,
        Op::Insert100,
        Op::SelectById,
        Op::Load1000,
        Op::Join1000,
    ];

    /// How many rows the operation inserts (the contenders number their titles with it).
    pub fn rows_inserted(self) -> i64 {
        match self {
            Op::InsertOne => 1,
            Op::Insert100 => 100,
            _ => 0,
        }
    }

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            Op::InsertOne => "insert 1 row",
            Op::Insert100 => "insert 100 rows (1 transaction)",
            Op::SelectById => "select by id",
            Op::Load1000 => "load 1,000 rows",
            Op::Join1000 => "FK join, 1,000 rows",
        }
    }
}

/// A course as every contender reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseRow {
    /// Key.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Teacher's key.
    pub teacher: i64,
    /// Seats.
    pub seats: u32,
}

/// The i-th seeded or inserted course's title.
pub fn title(i: i64) -> String {
    format!("Course number {i}")
}

/// Runs an operation `n` times with `run`, checking every answer against `expect` (negative: not
/// checked); time per operation.
pub fn time(
    n: usize,
    expect: i64,
    mut run: impl FnMut() -> anyhow::Result<i64>,
) -> anyhow::Result<std::time::Duration> {
    let start = std::time::Instant::now();
    for _ in 0..n {
        let got = run()?;
        anyhow::ensure!(
            expect < 0 || got == expect,
            "unexpected answer {got}, wanted {expect}"
        );
    }
    Ok(start.elapsed() / n as u32)
}
