//! Standard output for every command, through one writer whose errors are
//! kept rather than raised: `println!` panics when stdout is a pipe whose
//! reader went away (EPIPE; Rust ignores SIGPIPE, so the write fails rather
//! than killing the process), and a panic would cut a command short and
//! exit 101.
//!
//! The first error writing stdout ends the output: every later write fails
//! at once with the same kind, writing nothing, so a command that streams
//! (`dump`, `bench`) can stop, and a command that must finish its work
//! (`repair`) goes on regardless, since [`outln!`] and [`out!`] never fail.
//! `main` asks [`finish`] for the error at the end: EPIPE is the end of the
//! output, any other error is an I/O error (exit status 2).

use std::io::{self, ErrorKind, Write};
use std::sync::Mutex;

/// The first error writing stdout: its kind and message.
static FAILED: Mutex<Option<(ErrorKind, String)>> = Mutex::new(None);

fn failed() -> Option<io::Error> {
    let f = FAILED.lock().unwrap_or_else(|p| p.into_inner());
    f.as_ref().map(|(k, m)| io::Error::new(*k, m.clone()))
}

/// Keeps `e` as the first error, unless it is an interrupted call (which
/// the caller, `write_all`, makes again).
fn record(e: io::Error) -> io::Error {
    if e.kind() != ErrorKind::Interrupted {
        let mut f = FAILED.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert_with(|| (e.kind(), e.to_string()));
    }
    e
}

/// Stdout, failing (writing nothing) once any write to it has failed.
pub struct Out;

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = failed() {
            return Err(e);
        }
        io::stdout().write(buf).map_err(record)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = failed() {
            return Err(e);
        }
        io::stdout().flush().map_err(record)
    }
}

/// Flushes stdout; the first error writing it, if there was one.
pub fn finish() -> io::Result<()> {
    Out.flush()
}

/// Writes to [`Out`]: true when written (an error is kept for `main`).
pub fn print(args: std::fmt::Arguments<'_>) -> bool {
    Out.write_fmt(args).is_ok()
}

/// `print!` to [`Out`]; an error is kept for `main` ([`print`] says
/// whether it was written).
macro_rules! out {
    ($($arg:tt)*) => {{
        $crate::out::print(format_args!($($arg)*));
    }};
}

/// `println!` to [`Out`]; an error is kept for `main`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        $crate::out::print(format_args!("{}\n", format_args!($($arg)*)));
    }};
}

pub(crate) use {out, outln};
