//! The archive's options as the rest of the library sees them: the URL
//! parsed, the resolved options, their defaults. A leaf: it imports nothing
//! of the library, so the options (`config.rs`) name the archive without
//! reaching its machinery.

use std::path::PathBuf;

/// The default of `max_lag_bytes`: 256 MiB (`PWAL_ARCHIVE_DEFAULT_MAX_LAG_BYTES`).
pub const DEFAULT_MAX_LAG_BYTES: u64 = 256 << 20;

/// The archive options of a log, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// `s3://bucket/prefix` or `file:///absolute/dir`.
    pub url: String,
    /// Commits are refused while more than this many bytes of durable
    /// epochs wait to be archived.
    pub max_lag_bytes: u64,
    /// Commits and `wait_durable` return only once the epoch is archived.
    pub durable: bool,
}

/// A parsed archive URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveUrl {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl ArchiveUrl {
    /// Parses `s3://bucket/prefix` or `file:///absolute/dir`.
    pub fn parse(url: &str) -> Result<ArchiveUrl, String> {
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(format!(
                    "archive URL {url:?}: a file:// URL names an absolute directory (file:///dir)"
                ));
            }
            return Ok(ArchiveUrl::File(PathBuf::from(rest)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("archive URL {url:?}: no bucket name"));
            }
            let mut prefix = prefix.trim_matches('/').to_string();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            return Ok(ArchiveUrl::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        Err(format!(
            "archive URL {url:?}: expected s3://bucket/prefix or file:///absolute/dir"
        ))
    }
}
