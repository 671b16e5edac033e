//! The one error type of the core. Every variant carries the context a database
//! engineer needs to act on it (file, offset, epoch, what was expected); the C
//! layer maps each variant to exactly one `pwal_status` in `ffi::status`.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in pwal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller passed something the library cannot accept; nothing was
    /// written.
    #[error("invalid argument: {0}")]
    Invalid(String),

    /// A file operation failed. Raised by the call that observed the failure;
    /// the log is poisoned from then on if the failure was on the write path.
    #[error("I/O error: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// `wait_durable` gave up before the epoch became durable. The batch may
    /// still become durable later; it is not lost.
    #[error(
        "timed out after {waited_ms} ms waiting for epoch {epoch} (durable epoch is {durable})"
    )]
    Timeout {
        epoch: u64,
        durable: u64,
        waited_ms: u64,
    },

    /// Bytes on disk failed validation in a way that is not a torn tail.
    #[error("corrupt log: {file}: offset {offset}: {what}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },

    /// A writer holds the log: another process, or (for repair) this one.
    /// The text says which.
    #[error("log is locked: {0}")]
    Locked(String),

    /// An earlier write or sync failed; the log accepts nothing more until it
    /// is reopened (which runs recovery).
    #[error("log is poisoned by an earlier I/O failure: {0}")]
    Poisoned(String),

    /// The log is closing or closed.
    #[error("log is closed")]
    Closed,

    /// The handle was inherited across `fork()`: the log belongs to the
    /// process that opened it, and nothing was done.
    #[error("log handle inherited across fork(): {0}")]
    Forked(String),

    /// A recovery callback asked to stop.
    #[error("recovery stopped by the callback at epoch {epoch}")]
    Aborted { epoch: u64 },

    /// (archive) More than `archive_max_lag_bytes` of durable epochs are
    /// not archived yet: the transaction was refused and nothing written.
    /// Commits are accepted again once the archive catches up.
    #[error("the archive is behind: {0}")]
    ArchiveBehind(String),

    /// (archive) An archive object failed verification (a checksum, a gap,
    /// a fork): nothing was restored.
    #[error("damaged archive: {0}")]
    ArchiveDamaged(String),

    /// A bug in pwal (a caught panic or a broken invariant).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.into(),
            offset,
            what: what.into(),
        }
    }
}
