//! `pwal restore` and `pwal archive status|verify|ls`: the archive of a
//! log in object storage (docs/ARCHIVE.md). S3 settings come from the
//! standard `AWS_*` environment variables.

use std::path::Path;
use std::process::ExitCode;

use pwal::archive::time::{format_rfc3339, parse_rfc3339};
use pwal::archive::RestoreTarget;

use crate::{Outcome, CLEAN, DAMAGED};

/// `pwal restore URL PATH [--to-epoch N | --to-time T] [--force]`.
pub fn restore(
    url: &str,
    path: &Path,
    to_epoch: Option<u64>,
    to_time: Option<&str>,
    force: bool,
) -> Outcome {
    let target = match (to_epoch, to_time) {
        (Some(_), Some(_)) => return Err("give --to-epoch or --to-time, not both".into()),
        (Some(n), None) => RestoreTarget::Epoch(n),
        (None, Some(t)) => RestoreTarget::Time(parse_rfc3339(t)?),
        (None, None) => RestoreTarget::Latest,
    };
    match pwal::archive::restore(url, path, target, force) {
        Ok(r) => {
            println!(
                "restored epochs {}..={} ({} objects, {} segments, {} bytes) into {}",
                r.first_epoch,
                r.last_epoch,
                r.objects,
                r.segments,
                r.bytes,
                r.dir.display()
            );
            println!(
                "last epoch became durable at {}",
                format_rfc3339(r.last_time_ns)
            );
            if r.continues_archive {
                println!("a log opened there with archive_url {url} continues the archive");
            } else {
                println!(
                    "restored to a point before the archive's end: archive the log opened there to another URL"
                );
            }
            Ok(ExitCode::from(CLEAN))
        }
        Err(pwal::Error::ArchiveDamaged(m)) => {
            eprintln!("pwal: damaged archive, nothing restored: {m}");
            Ok(ExitCode::from(DAMAGED))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `pwal archive status PATH`: the persisted state, checked against the store.
pub fn status(path: &Path) -> Outcome {
    let s = pwal::archive::persisted_status(path).map_err(|e| e.to_string())?;
    if !s.archiving {
        println!(
            "not archived: {} has no archive state",
            pwal::log_dir(path).display()
        );
        println!("local last epoch: {}", s.local_last_epoch);
        return Ok(ExitCode::from(CLEAN));
    }
    println!("archive:          {}", s.url);
    println!("archived epoch:   {}", s.archived_epoch);
    println!(
        "last object:      {} (checksum {:08x})",
        s.last_object, s.last_object_crc
    );
    println!("local last epoch: {}", s.local_last_epoch);
    println!(
        "lag:              {} epochs",
        s.local_last_epoch.saturating_sub(s.archived_epoch)
    );
    match &s.store_check {
        Ok(()) => {
            println!("store:            the last object is there and matches");
            Ok(ExitCode::from(CLEAN))
        }
        Err(why) => {
            println!("store:            {why}");
            Ok(ExitCode::from(DAMAGED))
        }
    }
}

/// `pwal archive verify URL`: exit 0 clean, 1 damaged, 2 error.
pub fn verify(url: &str) -> Outcome {
    let r = pwal::archive::verify(url).map_err(|e| e.to_string())?;
    let epochs = match (r.objects.first(), r.objects.last()) {
        (Some(f), Some(l)) => format!("epochs {}..={}", f.first_epoch, l.last_epoch),
        _ => "no epochs".into(),
    };
    if r.problems.is_empty() {
        println!("{url}: clean: {} objects, {epochs}", r.objects.len());
        Ok(ExitCode::from(CLEAN))
    } else {
        for p in &r.problems {
            println!("{url}: {p}");
        }
        println!(
            "{url}: damaged: {} problems in {} objects ({epochs})",
            r.problems.len(),
            r.objects.len()
        );
        Ok(ExitCode::from(DAMAGED))
    }
}

/// `pwal archive ls URL`: one line per object.
pub fn ls(url: &str) -> Outcome {
    let r = pwal::archive::list(url).map_err(|e| e.to_string())?;
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:<27} {:<27}",
        "object", "first", "last", "bytes", "first durable", "last durable"
    );
    for o in &r.objects {
        println!(
            "{:<26} {:>10} {:>10} {:>10} {:<27} {:<27}",
            o.name,
            o.first_epoch,
            o.last_epoch,
            o.bytes,
            format_rfc3339(o.first_time_ns),
            format_rfc3339(o.last_time_ns)
        );
    }
    for p in &r.problems {
        eprintln!("pwal: {p}");
    }
    Ok(ExitCode::from(if r.problems.is_empty() {
        CLEAN
    } else {
        DAMAGED
    }))
}
