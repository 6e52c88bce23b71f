//! Client settings: call timeout, handshake timeout, reconnect policy.

use std::time::Duration;

/// How a client reconnects after its connection drops.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "a setting does nothing until given to a client"]
pub struct Reconnect {
    /// Whether to reconnect at all.
    pub enabled: bool,
    /// The first wait.
    pub initial_backoff: Duration,
    /// The longest wait (the wait doubles after each failed attempt, up to this).
    pub max_backoff: Duration,
    /// Attempts before giving up (`None`: keep trying while the handler lives).
    pub max_attempts: Option<u32>,
}

setters!(Reconnect {
    enabled: bool,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_attempts: Option<u32>,
});

setters!(ClientConfig {
    call_timeout: Duration,
    handshake_timeout: Duration,
    reconnect: Reconnect,
    outgoing_buffer: usize,
    max_frame: usize,
    keepalive: Duration,
    tls: Option<crate::tls::ClientTls>,
    local_addr: Option<std::net::IpAddr>,
});

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            enabled: true,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}

/// Settings of a [`ConnectionHandler`](super::ConnectionHandler).
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "a setting does nothing until given to a client"]
pub struct ClientConfig {
    /// How long a call waits for its reply (including waiting for a reconnect).
    pub call_timeout: Duration,
    /// How long the connect and handshake may take.
    pub handshake_timeout: Duration,
    /// Reconnect policy.
    pub reconnect: Reconnect,
    /// Bytes queued for the writer before callers wait.
    pub outgoing_buffer: usize,
    /// Largest frame accepted from the server (announced to it in the handshake).
    pub max_frame: usize,
    /// When nothing has come from the server for this long, ping it; when nothing comes for twice
    /// this long, the connection is taken for dead and re-established.
    pub keepalive: Duration,
    /// Speak TLS, trusting what this names (`None`: clear text). The cloud connectors made from
    /// the client use it too.
    pub tls: Option<crate::tls::ClientTls>,
    /// Connect from this local address (`None`: the system picks), for a host with several.
    pub local_addr: Option<std::net::IpAddr>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            call_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            reconnect: Reconnect::default(),
            outgoing_buffer: 1024 * 1024,
            max_frame: crate::wire::DEFAULT_MAX_FRAME,
            keepalive: Duration::from_secs(30),
            tls: None,
            local_addr: None,
        }
    }
}
