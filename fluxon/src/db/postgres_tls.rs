//! How a PostgreSQL URL's `sslmode` becomes TLS (rustls, the `ring` provider), with libpq's
//! meanings:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow`, `prefer` (the default) | if the server offers it, else clear text | not checked |
//! | `require` | always | not checked; with `sslrootcert`, checked as `verify-ca` |
//! | `verify-ca` | always | chains to a root in `sslrootcert` |
//! | `verify-full` | always | chains to a root in `sslrootcert` and names the host dialled |
//!
//! `require` protects against someone listening, not against someone in the middle: use
//! `verify-full` (with the server's CA in `sslrootcert=/path/root.pem`) wherever the network
//! between the node and the database is not yours. There is no system trust store here:
//! `verify-ca` and `verify-full` need `sslrootcert`, and refuse to connect without it.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::RootCertStore;

/// What the URL asked for, once its TLS parameters are taken out of it.
pub(crate) struct Tls {
    /// The URL without `sslmode` and `sslrootcert` (which the driver does not all know).
    pub url: String,
    /// Whether TLS is off, tried, or required.
    pub mode: SslMode,
    /// The client configuration, when TLS may be used.
    pub config: Option<rustls::ClientConfig>,
}

/// Why a URL's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    /// `sslmode` names no mode.
    #[error("unknown sslmode `{0}` (disable, allow, prefer, require, verify-ca or verify-full)")]
    Mode(String),
    /// `verify-ca` / `verify-full` without a root to verify against.
    #[error("sslmode={0} needs sslrootcert=<a PEM file of the server's CA>: there is no system trust store")]
    NoRoot(String),
    /// The roots could not be read.
    #[error("sslrootcert: {0}")]
    Root(#[from] crate::tls::TlsError),
    /// rustls could not make a verifier of the roots.
    #[error("sslrootcert: {0}")]
    Verifier(String),
}

/// How far the server's certificate is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// Takes `sslmode` and `sslrootcert` out of `url` and makes the TLS they ask for.
pub(crate) fn from_url(url: &str) -> Result<Tls, TlsSetupError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = None;
    let mut root = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        match key {
            "sslmode" => mode = Some(decoded),
            "sslrootcert" => root = Some(PathBuf::from(decoded)),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mode = mode.unwrap_or_else(|| "prefer".to_owned());
    let (ssl_mode, check) = match mode.as_str() {
        "disable" => {
            return Ok(Tls {
                url,
                mode: SslMode::Disable,
                config: None,
            })
        }
        "allow" | "prefer" => (SslMode::Prefer, Check::Nothing),
        "require" if root.is_some() => (SslMode::Require, Check::Chain),
        "require" => (SslMode::Require, Check::Nothing),
        "verify-ca" => (SslMode::Require, Check::Chain),
        "verify-full" => (SslMode::Require, Check::ChainAndName),
        other => return Err(TlsSetupError::Mode(other.to_owned())),
    };
    let roots = match (&root, check) {
        (_, Check::Nothing) => None,
        (Some(path), _) => {
            let mut roots = RootCertStore::empty();
            for certificate in crate::tls::read_certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|err| TlsSetupError::Root(err.into()))?;
            }
            Some(roots)
        }
        (None, _) => return Err(TlsSetupError::NoRoot(mode)),
    };
    Ok(Tls {
        url,
        mode: ssl_mode,
        config: Some(client_config(check, roots)?),
    })
}

fn client_config(
    check: Check,
    roots: Option<RootCertStore>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = crate::tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsSetupError::Root(err.into()))?;
    let chain = match roots {
        Some(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|err| TlsSetupError::Verifier(err.to_string()))?,
        ),
        None => None,
    };
    let config = match (check, chain) {
        (Check::ChainAndName, Some(chain)) => {
            builder.with_webpki_verifier(chain).with_no_client_auth()
        }
        (_, chain) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::tls::Verifier::chain_ignoring_name(
                chain, provider,
            )))
            .with_no_client_auth(),
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_come_out_of_the_url_and_the_rest_stays() {
        let tls =
            from_url("postgres://u@h:5/db?connect_timeout=3&sslmode=require&application_name=x")
                .unwrap();
        assert_eq!(
            tls.url,
            "postgres://u@h:5/db?connect_timeout=3&application_name=x"
        );
        assert!(matches!(tls.mode, SslMode::Require));
        assert!(tls.config.is_some());
        let plain = from_url("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(plain.url, "postgres://u@h/db");
        assert!(matches!(plain.mode, SslMode::Disable) && plain.config.is_none());
        let default = from_url("postgres://u@h/db").unwrap();
        assert!(matches!(default.mode, SslMode::Prefer));
        assert!(matches!(
            from_url("postgres://u@h/db?sslmode=verify-full"),
            Err(TlsSetupError::NoRoot(_))
        ));
        assert!(matches!(
            from_url("postgres://u@h/db?sslmode=sometimes"),
            Err(TlsSetupError::Mode(_))
        ));
        assert!(matches!(
            from_url("postgres://u@h/db?sslmode=verify-ca&sslrootcert=%2Fnonexistent%2Froot.pem"),
            Err(TlsSetupError::Root(_))
        ));
    }
}
