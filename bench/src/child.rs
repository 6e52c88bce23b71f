//! The server side of a benchmark that runs its server in a child process (this same binary with
//! `--serve`): the parent closes the child's stdin to say "stop".

/// Completes when stdin closes (the parent is done), read on a blocking thread.
pub fn stdin_closed() -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
    })
}
