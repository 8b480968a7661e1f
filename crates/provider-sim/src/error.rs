//! The library's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a simulator call failed.
///
/// The control API maps these to HTTP statuses (`NotServed` and `NotFound`
/// to 404, `Invalid` to 400), so tests driving the simulator in-process and
/// over HTTP see the same failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The call is about a provider this server does not simulate.
    #[error("provider `{0}` is not served by this simulator")]
    NotServed(&'static str),
    /// The named session, chat or file does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The input was refused.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A script file could not be read or understood.
    #[error("script {path}: {message}")]
    Script {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}
