//! The questions makemigrations asks a person at a terminal.

use std::io::{BufRead, Write};

use crate::migrate::{MigrateError, Questioner};

/// Asks on stdout and reads the answer from stdin.
#[derive(Debug, Default)]
pub struct TerminalQuestions;

fn ask(question: &str) -> Result<String, MigrateError> {
    let mut stdout = std::io::stdout();
    let io = |e| MigrateError::Io("<terminal>".into(), e);
    write!(stdout, "{question} ").map_err(io)?;
    stdout.flush().map_err(io)?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(io)?;
    Ok(line.trim().to_owned())
}

impl Questioner for TerminalQuestions {
    fn is_rename(&mut self, what: &str) -> Result<bool, MigrateError> {
        loop {
            match ask(&format!("{what}? [y/N]"))?
                .to_ascii_lowercase()
                .as_str()
            {
                "y" | "yes" => return Ok(true),
                "" | "n" | "no" => return Ok(false),
                _ => continue,
            }
        }
    }

    fn default_for(&mut self, table: &str, column: &str) -> Result<String, MigrateError> {
        let answer = ask(&format!(
            "{table}.{column} is new, NOT NULL and has no default. An SQL value for the rows that exist (e.g. 0, 'none'):"
        ))?;
        if answer.is_empty() {
            return Err(MigrateError::Ambiguous(format!(
                "no value given for {table}.{column}"
            )));
        }
        Ok(answer)
    }
}
