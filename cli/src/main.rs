//! `pwal`: look at, check, dump, repair and benchmark pwal logs.
//!
//! `info`, `verify`, `dump` and `repair --dry-run` only read: they take no
//! lock, change no file and evict no cached page, so they may run while the
//! log's writer does (see `pwal::inspect`). `repair` takes the lock through
//! `pwal::repair`. Exit status: 0 success (a clean log, for `verify`), 1 a
//! damaged log, 2 a usage or I/O error.
//!
//! Everything for stdout goes through `out` (never `println!`, which panics
//! on a closed pipe): a closed stdout (EPIPE; SIGPIPE stays ignored, as the
//! Rust runtime sets it) ends the output, not the command, which exits with
//! the status of what it did.

mod archive;
mod bench;
mod holder;
mod inspect;
mod out;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "pwal",
    version,
    about = "Inspect, verify, dump, repair and benchmark pwal write-ahead logs",
    long_about = "Inspect, verify, dump, repair and benchmark pwal write-ahead logs.\n\n\
        PATH is the database path, as given to pwal_open: the log is the directory PATH-pwal/ \
        (the log directory itself is accepted too). info, verify, dump and repair --dry-run \
        only read, without taking the log's lock: they may run while its writer does.\n\n\
        Exit status: 0 success, 1 damaged log, 2 usage or I/O error.\n\n\
        A closed stdout (a pipe whose reader went away: EPIPE) ends the output and is not an \
        error: the status is that of what the command did. info, verify and repair (repair \
        --dry-run too) still do all their work; repair completes every step. dump and bench stop \
        at the first write that fails: bench exits 0, dump exits 0, or 1 if it had already \
        reached damage. Any other error writing stdout is an I/O error (2)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segments, disk use, epochs, checkpoint mark, torn tail, and the writer holding the log
    Info {
        /// Database path (the log is PATH-pwal/)
        path: PathBuf,
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Validate every epoch of the log, checkpointed ones too: exit 0 clean (a torn
    /// tail is clean), 1 damaged, 2 error
    Verify {
        /// Database path (the log is PATH-pwal/)
        path: PathBuf,
    },
    /// One line per page frame, in recovery order
    Dump {
        /// Database path (the log is PATH-pwal/)
        path: PathBuf,
        /// Only frames of this epoch and later
        #[arg(long, value_name = "N")]
        from_epoch: Option<u64>,
        /// Only frames of this epoch and earlier
        #[arg(long, value_name = "M")]
        to_epoch: Option<u64>,
        /// Only frames of this page number
        #[arg(long, value_name = "P")]
        page: Option<u32>,
        /// Only frames of this transaction id
        #[arg(long, value_name = "ID")]
        txn: Option<u64>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// Also print each frame's bytes
        #[arg(long, value_name = "FORMAT")]
        data: Option<DataFormat>,
    },
    /// Cut a damaged log back to its durable prefix (pwal_repair), moving
    /// what it takes out into PATH-pwal/damaged/
    Repair {
        /// Database path (the log is PATH-pwal/)
        path: PathBuf,
        /// Report what repair would do, changing nothing (a read-only scan)
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the log at PATH-pwal/ from an archive (docs/ARCHIVE.md): every
    /// archived epoch up to the target, after verifying the whole chain.
    /// Exit 0 restored, 1 damaged archive (nothing written), 2 error
    Restore {
        /// The archive: s3://bucket/prefix or file:///absolute/dir (S3
        /// settings from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...)
        url: String,
        /// Database path (the log is written to PATH-pwal/)
        path: PathBuf,
        /// Restore epochs up to N only
        #[arg(long, value_name = "N", conflicts_with = "to_time")]
        to_epoch: Option<u64>,
        /// Restore the epochs durable at or before T only (RFC 3339, like
        /// 2026-12-08T10:00:00Z; the resolution is one epoch)
        #[arg(long, value_name = "T")]
        to_time: Option<String>,
        /// Replace an existing log at PATH-pwal/
        #[arg(long)]
        force: bool,
    },
    /// The archive of a log: status, verify, ls
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// This disk's fdatasync floor and durable bandwidth, then pwal's
    /// commits/s at 1, 4 and 16 writer threads (sync FULL)
    Bench {
        /// Where to make the temporary files (default: the current directory)
        dir: Option<PathBuf>,
        /// Seconds for each of the five measurements
        #[arg(long, default_value_t = 5.0, value_name = "S")]
        seconds: f64,
    },
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// What the log at PATH has archived (its persisted state), its lag,
    /// and whether the store holds the last object: exit 0 fine, 1 the store
    /// disagrees, 2 error
    Status {
        /// Database path (the log is PATH-pwal/)
        path: PathBuf,
    },
    /// Check every object of the archive (checksums, frames) and its chain
    /// (gaps, forks): exit 0 clean, 1 damaged, 2 error
    Verify {
        /// s3://bucket/prefix or file:///absolute/dir
        url: String,
    },
    /// One line per object: its epochs, size and durable times
    Ls {
        /// s3://bucket/prefix or file:///absolute/dir
        url: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DataFormat {
    /// Lower-case hexadecimal
    Hex,
}

/// How a command ends: its exit status, or an error message (status 2).
pub type Outcome = Result<ExitCode, String>;

pub const CLEAN: u8 = 0;
pub const DAMAGED: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Info { path, json } => inspect::info(&db_path(&path), json),
        Command::Verify { path } => inspect::verify(&db_path(&path)),
        Command::Dump {
            path,
            from_epoch,
            to_epoch,
            page,
            txn,
            json,
            data,
        } => inspect::dump(
            &db_path(&path),
            &inspect::DumpFilter {
                from_epoch,
                to_epoch,
                page,
                txn,
            },
            json,
            data.is_some(),
        ),
        Command::Repair { path, dry_run } => inspect::repair(&db_path(&path), dry_run),
        Command::Bench { dir, seconds } => bench::run(dir.as_deref(), seconds),
        Command::Restore {
            url,
            path,
            to_epoch,
            to_time,
            force,
        } => archive::restore(&url, &path, to_epoch, to_time.as_deref(), force),
        Command::Archive { command } => match command {
            ArchiveCommand::Status { path } => archive::status(&db_path(&path)),
            ArchiveCommand::Verify { url } => archive::verify(&url),
            ArchiveCommand::Ls { url } => archive::ls(&url),
        },
    };
    // A closed stdout (EPIPE: the reader of a pipe went away) ends the
    // output, not the command: it exits with the status of what it did.
    let written = out::finish();
    let mut stderr = std::io::stderr();
    match (outcome, written) {
        (Err(msg), _) => {
            let _ = writeln!(stderr, "pwal: {msg}");
            ExitCode::from(2)
        }
        (Ok(code), Ok(())) => code,
        (Ok(code), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        (Ok(_), Err(e)) => {
            let _ = writeln!(stderr, "pwal: writing to standard output: {e}");
            ExitCode::from(2)
        }
    }
}

/// The database path for PATH: PATH itself, unless PATH is a log directory
/// (`X-pwal`, with no `X-pwal-pwal` beside it), then X.
fn db_path(path: &Path) -> PathBuf {
    if !pwal::log_dir(path).exists() && path.is_dir() {
        if let Some(db) = path
            .to_str()
            .map(|s| s.trim_end_matches('/'))
            .and_then(|s| s.strip_suffix("-pwal"))
            .filter(|s| !s.is_empty())
        {
            return PathBuf::from(db);
        }
    }
    path.to_path_buf()
}
