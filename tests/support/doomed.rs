//! A server on a runtime of its own, on a thread of its own, that can be killed outright:
//! dropping its runtime ends every task of the server with no goodbye (its sockets close, its
//! Redis connection drops), as when its process is killed. For the cluster tests and benchmark.
//! Included with `#[path = "../support/doomed.rs"] mod doomed;`.

#![allow(dead_code)] // each binary uses a part

/// A running server that [`kill`](Doomed::kill) ends without a goodbye.
pub struct Doomed {
    /// The address its clients dial.
    pub addr: String,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Doomed {
    /// Starts `server` on a one-worker runtime of its own; `None` if it did not start.
    pub fn start(server: fluxon::AsyncServer) -> Option<Doomed> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            else {
                return;
            };
            let Ok(node) = runtime.block_on(server.start()) else {
                return;
            };
            let _ = addr_tx.send(node.local_addr().to_string());
            let _ = killed.recv();
            // No shutdown, no goodbye: every task of the server goes with its runtime.
            drop(node);
            drop(runtime);
        });
        let addr = addr_rx.recv().ok()?;
        Some(Doomed {
            addr,
            kill: Some(kill),
            thread: Some(thread),
        })
    }

    /// Kills the server and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        self.kill();
    }
}
