//! Errors from building and starting the gateway (request-time problems are responses).

/// A gateway that could not be built or started. Every variant names the listener or route.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is inconsistent.
    #[error("gateway configuration: {0}")]
    Config(String),
    /// A TLS configuration could not be built.
    #[error("tls setup for {what}: {source}")]
    Tls {
        /// Which listener or upstream.
        what: String,
        /// The rustls error.
        source: rustls::Error,
    },
    /// A listener could not bind.
    #[error("listener {name:?} could not bind {addr}: {source}")]
    Bind {
        /// The listener name.
        name: String,
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}
