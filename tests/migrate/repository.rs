//! The repository's own migrations, and the command line that writes them.

use std::path::Path;

use fluxon::cli::{run_with, App};
use fluxon_apps::school::MODELS;

fn repository_migrations() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
}

#[test]
fn the_repository_migrations_match_the_example_models() {
    fluxon::migrate::check(repository_migrations(), &MODELS)
        .expect("run `cargo run -- makemigrations`");
    // And they build a database the models accept.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("school.sqlite3");
    fluxon::migrate::apply(&db, repository_migrations(), None).unwrap();
    fluxon::migrate::check_drift(&db, &MODELS).unwrap();
}

fn cli(app: App, args: &[&str]) -> Result<String, fluxon::cli::CliError> {
    let mut out = Vec::new();
    let args = std::iter::once("app")
        .chain(args.iter().copied())
        .map(str::to_owned);
    run_with(app, args, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn the_commands_make_check_apply_show_and_print_migrations() {
    let tmp = tempfile::tempdir().unwrap();
    let app = || {
        App::new("test")
            .models(&MODELS)
            .database(tmp.path().join("app.sqlite3"))
            .migrations(tmp.path().join("migrations"))
    };
    let err = cli(app(), &["makemigrations", "--check"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("create table user") && err.contains("cargo run -- makemigrations"),
        "{err}"
    );

    let out = cli(app(), &["makemigrations", "--name", "First Steps"]).unwrap();
    assert!(
        out.contains("V1__first_steps.sql") && out.contains("create table enrollment"),
        "{out}"
    );
    assert_eq!(
        cli(app(), &["makemigrations"]).unwrap().trim(),
        "No changes detected."
    );
    assert!(cli(app(), &["makemigrations", "--check"])
        .unwrap()
        .contains("No changes"));

    let out = cli(app(), &["makemigrations", "--empty"]).unwrap();
    assert!(out.contains("V2__custom.sql"), "{out}");

    assert_eq!(
        cli(app(), &["showmigrations"]).unwrap(),
        "[ ] V1__first_steps\n[ ] V2__custom\n"
    );
    let out = cli(app(), &["migrate", "--to", "1"]).unwrap();
    assert_eq!(out, "Applied V1__first_steps\n");
    assert_eq!(
        cli(app(), &["showmigrations"]).unwrap(),
        "[X] V1__first_steps\n[ ] V2__custom\n"
    );
    assert_eq!(cli(app(), &["migrate"]).unwrap(), "Applied V2__custom\n");
    assert_eq!(
        cli(app(), &["migrate"]).unwrap(),
        "No migrations to apply.\n"
    );

    let sql = cli(app(), &["sqlmigrate", "1"]).unwrap();
    assert!(
        sql.contains("CREATE TABLE IF NOT EXISTS \"course\""),
        "{sql}"
    );
    assert!(cli(app(), &["sqlmigrate", "9"])
        .unwrap_err()
        .to_string()
        .contains("no migration with version 9"));
    let usage = cli(app(), &["frobnicate"]).unwrap_err();
    assert!(matches!(usage, fluxon::cli::CliError::Usage(_)));
}

#[test]
fn serve_refuses_a_drifted_database_and_says_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::new("test")
        .models(&MODELS)
        .database(tmp.path().join("app.sqlite3"))
        .migrations(repository_migrations())
        .serve_with(|_| unreachable!("a drifted database is never served"));
    let err = cli(app, &["serve"]).unwrap_err().to_string();
    assert!(
        err.contains("does not match the models") && err.contains("cargo run -- migrate"),
        "{err}"
    );
}
