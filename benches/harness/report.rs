//! `docs/BENCHMARKS.md` and the SVG charts beside it. The charts are drawn by
//! hand (a polyline per contender on log2 thread axes): no plotting
//! dependency to build.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::contenders::Kind;
use super::micro::CoreRatios;
use super::recovery::RecoveryResult;
use super::{ratio, Cell, CellResult, Metrics};

/// Marks the hand-written analysis that a rerun keeps.
pub const NOTES_BEGIN: &str = "<!-- notes:begin (kept across reruns of the benchmark) -->";
pub const NOTES_END: &str = "<!-- notes:end -->";

/// Syscall counts of one contender under `strace -f -c`.
#[derive(Clone, Debug, Default)]
pub struct StraceResult {
    pub kind: Option<Kind>,
    pub threads: usize,
    pub commits: u64,
    /// (syscall, calls), most frequent first.
    pub calls: Vec<(String, u64)>,
    pub error: Option<String>,
}

/// Everything one run of the suite measured.
pub struct Suite {
    pub command: String,
    pub date: String,
    pub quick: bool,
    pub runs: usize,
    pub warmup: Duration,
    pub secs: Duration,
    pub threads: Vec<usize>,
    pub pages: Vec<usize>,
    pub page_sizes: Vec<usize>,
    pub kinds: Vec<Kind>,
    pub results: Vec<CellResult>,
    pub recovery: Vec<RecoveryResult>,
    pub core: Option<CoreRatios>,
    pub strace: Vec<StraceResult>,
    /// The sustained run and the disk footprint (`None`: not run).
    pub sustained: Option<Result<super::sustained::SustainedResult, String>>,
    pub footprint: Option<Result<super::footprint::FootprintResult, String>>,
    /// What bounds the bandwidth-bound no-checkpoint cells (measured right
    /// after the grid).
    pub epoch_bounds: Vec<Result<super::new_space::EpochBound, (Cell, String)>>,
    /// The floor's loop at the size of pwal's frames, 1 writer, 4 KiB.
    pub frame_bound: Option<Result<super::new_space::FrameBound, (Cell, String)>>,
    pub data_dir_fs: String,
    pub elapsed_secs: f64,
    pub notes: Vec<String>,
    /// The tree measured (commit, uncommitted changes).
    pub git: String,
    /// Load averages at the start and at the end of the suite.
    pub load: (String, String),
}

fn color(k: Kind) -> &'static str {
    match k {
        Kind::PwalAutoFull => "#d62728",
        Kind::PwalAutoFullNoCheckpoint => "#8c564b",
        Kind::PwalConservativeFull => "#ff7f0e",
        Kind::PwalAutoNormal => "#e377c2",
        Kind::SqliteFull => "#1f77b4",
        Kind::SqliteNormal => "#17becf",
        Kind::Rocksdb => "#2ca02c",
        Kind::Mutex => "#7f7f7f",
        Kind::Floor => "#000000",
        Kind::SeqFloor => "#bcbd22",
    }
}

fn size_name(page_size: usize) -> String {
    format!("{}k", page_size / 1024)
}

pub fn chart_name(metric: &str, pages: usize, page_size: usize) -> String {
    format!("bench-{metric}-{}-{pages}p.svg", size_name(page_size))
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_ratio(x: f64) -> String {
    if x.is_finite() && x < 10.0 {
        // Three decimals: a ratio shown as 0.85 must not be a miss of 0.85.
        format!("{x:.3}x")
    } else if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "n/a".into()
    }
}

impl Suite {
    /// "; what bounds it: ..." for the no-checkpoint / sequential floor row
    /// of `cell`, from its measured [`EpochBound`].
    fn epoch_bound_text(&self, cell: Cell, pwal_cps: f64, floor_cps: f64) -> Option<String> {
        let b = self.epoch_bounds.iter().find_map(|b| match b {
            Ok(b) if b.cell == cell => Some(Ok(b)),
            Err((c, e)) if *c == cell => Some(Err(e)),
            _ => None,
        })?;
        Some(match b {
            Err(e) => format!("; its bound not measured: {e}"),
            Ok(b) => format!(
                "; what bounds it: its epochs (mean {} KiB, {:.1} commits) written back to back by one thread, each followed by `fdatasync`, carry {} commits/s appended to an empty file ({} the floor; pwal is {} of it) and {} commits/s over a pre-zeroed file ({} the floor)",
                fmt_num(b.space.write_bytes as f64 / 1024.0),
                b.txns_per_epoch,
                fmt_num(b.append_cps()),
                fmt_ratio(ratio(b.append_cps(), floor_cps)),
                fmt_ratio(ratio(pwal_cps, b.append_cps())),
                fmt_num(b.overwrite_cps()),
                fmt_ratio(ratio(b.overwrite_cps(), floor_cps)),
            ),
        })
    }

    /// "; what bounds it: ..." for the 1-writer / floor row.
    fn frame_bound_text(&self, pwal_cps: f64) -> Option<String> {
        Some(match self.frame_bound.as_ref()? {
            Err((_, e)) => format!("; its bound not measured: {e}"),
            Ok(b) => format!(
                "; what bounds it: the floor's loop (measured after the grid) writing pwal's mean frame ({} B: the page and its headers, so frames straddle pages) carries {} commits/s, against {} writes/s of a page alongside (frame / page: {}); pwal's grid figure is {} of the loop at its frame size",
                b.frame_bytes,
                fmt_num(b.frame_cps()),
                fmt_num(b.at_page),
                fmt_ratio(ratio(b.at_frame, b.at_page)),
                fmt_ratio(ratio(pwal_cps, b.frame_cps())),
            ),
        })
    }

    pub fn get(&self, kind: Kind, cell: Cell) -> Option<Metrics> {
        let cell = kind.effective_cell(cell);
        self.results
            .iter()
            .find(|r| r.kind == kind && r.cell == cell)
            .and_then(|r| r.median())
    }

    fn cps(&self, kind: Kind, threads: usize) -> f64 {
        self.get(
            kind,
            Cell {
                threads,
                pages: 1,
                page_size: 4096,
            },
        )
        .map(|m| m.commits_per_s)
        .unwrap_or(f64::NAN)
    }

    /// The comparison targets: (what, measured, target, met).
    pub fn targets(&self) -> Vec<(String, String, String, bool)> {
        let mut t = Vec::new();
        let pw = Kind::PwalAutoFull;
        let mut ratio_row = |what: String, a: f64, b: f64, want: f64, then: Option<String>| {
            let r = ratio(a, b);
            t.push((
                what,
                format!(
                    "{} ({} vs {} commits/s){}",
                    fmt_ratio(r),
                    fmt_num(a),
                    fmt_num(b),
                    then.unwrap_or_default()
                ),
                format!(">= {want}x"),
                r >= want,
            ));
        };
        ratio_row(
            "1 writer: pwal / SQLite FULL".into(),
            self.cps(pw, 1),
            self.cps(Kind::SqliteFull, 1),
            1.0,
            None,
        );
        ratio_row(
            "1 writer: pwal / floor".into(),
            self.cps(pw, 1),
            self.cps(Kind::Floor, 1),
            0.85,
            self.frame_bound_text(self.cps(pw, 1)),
        );
        for (n, s) in [(16, 4.0), (64, 6.0)] {
            ratio_row(
                format!("{n} writers: pwal / SQLite FULL"),
                self.cps(pw, n),
                self.cps(Kind::SqliteFull, n),
                s,
                None,
            );
            ratio_row(
                format!("{n} writers: pwal / RocksDB"),
                self.cps(pw, n),
                self.cps(Kind::Rocksdb, n),
                1.5,
                None,
            );
        }
        // Bandwidth-bound commits on a log nobody checkpoints: the sequential
        // floor's commits/s is its MB/s over the cell's commit size.
        let np = Kind::PwalAutoFullNoCheckpoint;
        for n in [16, 64] {
            let cell = Cell {
                threads: n,
                pages: 8,
                page_size: 16384,
            };
            let cps = |k: Kind| self.get(k, cell).map_or(f64::NAN, |m| m.commits_per_s);
            for (k, want) in [
                (Kind::Rocksdb, 1.2),
                (Kind::SqliteFull, 1.0),
                (Kind::SeqFloor, 0.8),
            ] {
                ratio_row(
                    format!(
                        "{n} writers, 8 x 16 KiB pages: pwal, no checkpoint / {}",
                        k.label()
                    ),
                    cps(np),
                    cps(k),
                    want,
                    (k == Kind::SeqFloor)
                        .then(|| self.epoch_bound_text(cell, cps(np), cps(k)))
                        .flatten(),
                );
            }
        }
        let c16 = Cell {
            threads: 16,
            pages: 1,
            page_size: 4096,
        };
        if let Some(m) = self.get(pw, c16) {
            let r = ratio(m.p99_us, m.p50_us);
            // The disk's own tail: the floor is nothing but fdatasync.
            let floor = self
                .get(
                    Kind::Floor,
                    Cell {
                        threads: 1,
                        pages: 1,
                        page_size: 4096,
                    },
                )
                .map(|f| {
                    format!(
                        "; the floor's own p99/p50: {}",
                        fmt_ratio(ratio(f.p99_us, f.p50_us))
                    )
                })
                .unwrap_or_default();
            let sync = m
                .pwal
                .map(|p| {
                    format!(
                        "; pwal's fdatasync p99/p50: {}",
                        fmt_ratio(ratio(p.sync_p99_us as f64, p.sync_p50_us as f64))
                    )
                })
                .unwrap_or_default();
            t.push((
                "16 writers: pwal p99 / p50 commit latency (grid cell: a fresh log, its growth inside the measured seconds)".into(),
                format!(
                    "{} ({} / {} us{floor}{sync})",
                    fmt_ratio(r),
                    fmt_num(m.p99_us),
                    fmt_num(m.p50_us)
                ),
                "<= 3x".into(),
                r <= 3.0,
            ));
        }
        for r in &self.recovery {
            if r.error.is_some() {
                t.push((
                    format!("recovery, {} MiB log", r.target_mib),
                    "error".into(),
                    "".into(),
                    false,
                ));
                continue;
            }
            let q = ratio(r.recover_mb_s(), r.read_mb_s());
            t.push((
                format!(
                    "recovery rate / sequential read rate, {} MiB log",
                    r.target_mib
                ),
                format!(
                    "{} ({} vs {} MB/s)",
                    fmt_ratio(q),
                    fmt_num(r.recover_mb_s()),
                    fmt_num(r.read_mb_s())
                ),
                ">= 0.9x".into(),
                q >= 0.9,
            ));
            t.push((
                format!("recovery peak memory, {} MiB log", r.target_mib),
                format!(
                    "{:.1} MiB (VmHWM of the recovering process)",
                    r.recover_hwm_kib as f64 / 1024.0
                ),
                "< 64 MiB".into(),
                r.recover_hwm_kib < 64 * 1024,
            ));
        }
        // Averaged over the frames of each cell; the epoch header is shared by
        // the transactions of an epoch, so the figure depends on batching.
        for n in [1, 16, 64] {
            let Some(p) = self
                .get(
                    pw,
                    Cell {
                        threads: n,
                        pages: 1,
                        page_size: 4096,
                    },
                )
                .and_then(|m| m.pwal)
            else {
                continue;
            };
            let o = p.overhead_per_frame(4096);
            t.push((
                format!(
                    "bytes written beyond the page per 4 KiB frame, {n} writer(s), 1 page/commit"
                ),
                format!(
                    "{o:.1} B ({:.1} transactions per epoch)",
                    p.txns_per_epoch_mean()
                ),
                "<= 64 B".into(),
                o <= 64.0,
            ));
        }
        if let Some(Ok(r)) = &self.sustained {
            t.extend(r.targets());
        }
        if let Some(Ok(r)) = &self.footprint {
            t.extend(r.targets());
        }
        t
    }

    pub fn markdown(&self, kept_notes: Option<&str>) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "# pwal benchmarks\n");
        let _ = writeln!(
            w,
            "Written by `benches/compare.rs` ({} mode) on {}. Rerun with `scripts/bench.sh{}` \
             (installs the peers, builds, runs, rewrites this file and the charts).\n",
            if self.quick { "quick" } else { "full" },
            self.date,
            if self.quick { " --quick" } else { "" }
        );
        let _ = writeln!(
            w,
            "Command: `{}`  \nWall time of the suite: {:.0} s\n",
            self.command, self.elapsed_secs
        );
        let _ = writeln!(w, "## Machine\n");
        for l in super::sys::machine_description() {
            let _ = writeln!(w, "- {l}");
        }
        let _ = writeln!(w, "- Data directory: {}", self.data_dir_fs);
        let _ = writeln!(
            w,
            "- Load average (1, 5, 15 min) at start: {}; at end: {} (the machine is shared with other builds)",
            self.load.0, self.load.1
        );
        let _ = writeln!(
            w,
            "- SQLite {} (system library), RocksDB {} (Debian librocksdb), pwal {} at {}",
            super::peers::sqlite_version().unwrap_or_else(|| "unavailable".into()),
            super::sys::deb_version("librocksdb-dev").unwrap_or_else(|| "unavailable".into()),
            env!("CARGO_PKG_VERSION"),
            self.git
        );
        let _ = writeln!(w, "\n## Method\n");
        let _ = writeln!(
            w,
            "Each cell is the median of {} runs; within a run every contender is opened fresh in its own \
             directory, warmed up for {:.2} s and measured for {:.2} s, and the order of the contenders \
             rotates from one run to the next so that drift of the shared disk hits all alike. A commit \
             counts if it completes inside the measured window; latency is measured around the commit call \
             of each writer thread. Only commits completed inside the window give a latency sample, so a \
             writer starved for the whole window adds none: SQLite's busy handler sleeps up to 100 ms between \
             attempts, and its p99.9 shows that tail better than its p99. CPU is user + system time of the whole process (all threads, including \
             the engines' own) per 1000 commits, from `getrusage`. MB/s counts page bytes only.\n",
            self.runs,
            self.warmup.as_secs_f64(),
            self.secs.as_secs_f64()
        );
        let _ = writeln!(
            w,
            "- **pwal**: `Log::commit` (submit + wait for durability), default options, one thread checkpointing \
             everything durable every 100 ms (as an engine copying pages home would). The warm-up starts once \
             pwal's preallocation thread has zero-filled its first spare segment (segments start at 4 MiB and \
             double; the fill is synced 1 MiB at a time): until then that fill shares the disk with the commits. Page numbers differ per commit.\n\
             - **pwal, no checkpoint**: the same without the checkpointing thread: a log nobody checkpoints, whose \
             segments are all new (none recycled).\n\
             - **SQLite**: WAL mode, one connection per thread, `BEGIN IMMEDIATE`, one `INSERT` of a page-sized \
             blob per page, `COMMIT`; `busy_timeout` 10 s and retry on `SQLITE_BUSY`. Default page size and \
             auto-checkpoint.\n\
             - **RocksDB**: C API, default options, `WriteOptions.sync = true`, one write batch per commit with one \
             page-sized value per page.\n\
             - **mutex**: one global mutex around `pwrite` of the commit's pages + `fdatasync`, into a pre-zeroed \
             64 MiB file (cyclic).\n\
             - **floor**: the same with one thread: the cost of one overwrite + `fdatasync` per commit; drawn as a \
             flat line.\n\
             - **sequential floor**: one thread overwriting the same pre-zeroed file in 4 MiB writes, each followed by \
             `fdatasync`: the disk's sequential durable bandwidth, given as the commits of the cell's size it carries \
             per second; drawn as a flat line.\n\
             - Rows marked (*) are not durable against power loss (`synchronous=NORMAL` / pwal `normal`: \
             acknowledged once written to the OS).\n"
        );
        for n in &self.notes {
            let _ = writeln!(w, "- Note: {n}");
        }

        let _ = writeln!(
            w,
            "\n## Targets, ratios in this run (4 KiB pages, 1 page per commit, unless the row says otherwise)\n"
        );
        w.push_str(&targets_table(&self.targets()));
        if let Some(c) = &self.core {
            let _ = writeln!(
                w,
                "\n## Core ratios (4 KiB pages, 1 page per commit, sync full)\n"
            );
            let _ = writeln!(w, "| ratio | wanted | met |\n| --- | --- | --- |");
            for (l, want, ok) in c.lines() {
                let _ = writeln!(
                    w,
                    "| {l} | {want} | {} |",
                    match ok {
                        Some(true) => "yes",
                        Some(false) => "**no**",
                        None => "-",
                    }
                );
            }
            let _ = writeln!(
                w,
                "\nThe same four ratios alone: `cargo bench --bench core` (floor, pwal 1 and 16 writers, \
                 conservative 16 writers, and the submit path)."
            );
        }

        for &ps in &self.page_sizes {
            for &pages in &self.pages {
                self.cell_tables(w, pages, ps);
            }
        }
        self.pwal_tables(w);
        self.recovery_table(w);
        for (what, md) in [
            (
                "Sustained commits",
                self.sustained
                    .as_ref()
                    .map(|r| r.as_ref().map(super::sustained::markdown)),
            ),
            (
                "Disk footprint",
                self.footprint
                    .as_ref()
                    .map(|r| r.as_ref().map(super::footprint::markdown)),
            ),
        ] {
            match md {
                Some(Ok(md)) => {
                    let _ = writeln!(w, "\n{}", md.trim_end());
                }
                Some(Err(e)) => {
                    let _ = writeln!(w, "\n## {what}\n\nerror: {e}");
                }
                None => {}
            }
        }
        self.strace_table(w);

        let _ = writeln!(w, "\n## Analysis\n");
        let missed: Vec<String> = self
            .targets()
            .into_iter()
            .filter(|t| !t.3)
            .map(|t| t.0)
            .collect();
        if missed.is_empty() {
            let _ = writeln!(w, "Every target was met in this run.\n");
        } else {
            let _ = writeln!(w, "Missed in this run: {}.\n", missed.join("; "));
        }
        let _ = writeln!(w, "{NOTES_BEGIN}");
        match kept_notes {
            Some(n) => {
                let _ = write!(w, "{n}");
            }
            None => {
                let _ = writeln!(w, "(No notes yet.)");
            }
        }
        let _ = writeln!(w, "{NOTES_END}");
        s
    }

    fn kinds_in(&self, pages: usize, ps: usize) -> Vec<Kind> {
        self.kinds
            .iter()
            .copied()
            .filter(|&k| {
                self.results
                    .iter()
                    .any(|r| r.kind == k && r.cell.pages == pages && r.cell.page_size == ps)
            })
            .collect()
    }

    fn cell_tables(&self, w: &mut String, pages: usize, ps: usize) {
        let kinds = self.kinds_in(pages, ps);
        if kinds.is_empty() {
            return;
        }
        let _ = writeln!(
            w,
            "\n## {} KiB pages, {pages} page(s) per commit\n",
            ps / 1024
        );
        let _ = writeln!(
            w,
            "![commits/s]({})\n![p99 latency]({})\n",
            chart_name("commits", pages, ps),
            chart_name("p99", pages, ps)
        );
        let header = |w: &mut String, title: &str| {
            let _ = write!(w, "| {title} |");
            for t in &self.threads {
                let _ = write!(w, " {t} |");
            }
            let _ = write!(w, "\n| --- |");
            for _ in &self.threads {
                let _ = write!(w, " ---: |");
            }
            let _ = writeln!(w);
        };
        for (title, f) in [
            (
                "commits/s",
                (|m: &Metrics| m.commits_per_s) as fn(&Metrics) -> f64,
            ),
            ("p99 commit latency, us", |m: &Metrics| m.p99_us),
        ] {
            let _ = writeln!(w, "{title} by writer threads:\n");
            header(w, "contender");
            for &k in &kinds {
                let _ = write!(w, "| {} |", k.label());
                for &t in &self.threads {
                    let c = Cell {
                        threads: t,
                        pages,
                        page_size: ps,
                    };
                    let v = if k.single_thread() && t != 1 {
                        "".to_string()
                    } else {
                        self.get(k, c)
                            .map(|m| fmt_num(f(&m)))
                            .unwrap_or_else(|| "-".into())
                    };
                    let _ = write!(w, " {v} |");
                }
                let _ = writeln!(w);
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(w, "<details><summary>All metrics (medians)</summary>\n");
        let _ = writeln!(
            w,
            "| contender | threads | commits/s | MB/s | p50 us | p99 us | p99.9 us | CPU s / 1000 commits | runs |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for &k in &kinds {
            for &t in &self.threads {
                let c = k.effective_cell(Cell {
                    threads: t,
                    pages,
                    page_size: ps,
                });
                if c.threads != t {
                    continue;
                }
                let Some(r) = self.results.iter().find(|r| r.kind == k && r.cell == c) else {
                    continue;
                };
                match r.median() {
                    Some(m) => {
                        let _ = writeln!(
                            w,
                            "| {} | {t} | {} | {} | {} | {} | {} | {:.3} | {} |",
                            k.label(),
                            fmt_num(m.commits_per_s),
                            fmt_num(m.mb_per_s),
                            fmt_num(m.p50_us),
                            fmt_num(m.p99_us),
                            fmt_num(m.p999_us),
                            m.cpu_s_per_1000,
                            r.runs.len()
                        );
                    }
                    None => {
                        let _ = writeln!(
                            w,
                            "| {} | {t} | error: {} | | | | | | 0 |",
                            k.label(),
                            r.errors
                                .first()
                                .map(|e| e.replace('|', "/"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
        let _ = writeln!(w, "\n</details>");
    }

    fn pwal_tables(&self, w: &mut String) {
        let rows: Vec<&CellResult> = self
            .results
            .iter()
            .filter(|r| {
                matches!(
                    r.kind,
                    Kind::PwalAutoFull | Kind::PwalConservativeFull | Kind::PwalAutoNormal
                )
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(w, "\n## Inside pwal: group commit and bytes per frame\n");
        let _ = writeln!(
            w,
            "From `Log::stats()` over the measured window (medians of the runs; the percentiles of \
             transactions per epoch come from the log's histogram over the whole run).\n"
        );
        let _ = writeln!(
            w,
            "| contender | page | pages | threads | txns/epoch mean | p50 | p99 | syncs per commit | fdatasync p50 / p99 us | bytes per frame beyond the page |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in rows {
            let Some(m) = r.median() else { continue };
            let Some(p) = m.pwal else { continue };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {:.2} | {} | {} | {:.3} | {} / {} | {:.1} |",
                r.kind.label(),
                size_name(r.cell.page_size),
                r.cell.pages,
                r.cell.threads,
                p.txns_per_epoch_mean(),
                p.txns_per_epoch_p50,
                p.txns_per_epoch_p99,
                ratio(p.syncs as f64, p.transactions as f64),
                p.sync_p50_us,
                p.sync_p99_us,
                p.overhead_per_frame(r.cell.page_size)
            );
        }
    }

    fn recovery_table(&self, w: &mut String) {
        if self.recovery.is_empty() {
            return;
        }
        let _ = writeln!(w, "\n## Recovery\n");
        let _ = writeln!(
            w,
            "A log of the given size (2 writers, 8 pages of 4 KiB per transaction, sync off, closed) is \
             recovered by `pwal::recover` in a child process with a callback that touches every record, and \
             the same segment files are read sequentially (1 MiB `read`s, in order, as many bytes as recovery reported as log bytes: the preallocated zero tail of the last segment is not part of the log) by another child. Before each child every \
             file is synced and dropped from the page cache with `posix_fadvise(DONTNEED)`; a cache of the \
             host below the virtual disk cannot be dropped from here, so \"from disk\" means from below the \
             guest's page cache. Peak memory is the child's `VmHWM` (it includes the benchmark binary's own \
             resident pages, a few MiB; compare with the reader's). Both rates count the log bytes the recovery report names. Medians of {} runs, alternating which child goes first.\n",
            self.recovery.first().map(|r| r.runs).unwrap_or(0)
        );
        let _ = writeln!(
            w,
            "| log | segments | epochs | records | recover s (CPU s) | recover MB/s | recover peak MiB | read s (CPU s) | read MB/s | read peak MiB | rate ratio |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in &self.recovery {
            if let Some(e) = &r.error {
                let _ = writeln!(
                    w,
                    "| {} MiB | error: {} | | | | | | | | | |",
                    r.target_mib,
                    e.replace('|', "/")
                );
                continue;
            }
            let _ = writeln!(
                w,
                "| {} MiB ({:.1} MiB of frames) | {} | {} | {} | {:.3} ({:.3}) | {} | {:.1} | {:.3} ({:.3}) | {} | {:.1} | {} |",
                r.target_mib,
                r.log_bytes as f64 / 1048576.0,
                r.segments,
                r.epochs,
                r.records,
                r.recover_secs,
                r.recover_cpu_secs,
                fmt_num(r.recover_mb_s()),
                r.recover_hwm_kib as f64 / 1024.0,
                r.read_secs,
                r.read_cpu_secs,
                fmt_num(r.read_mb_s()),
                r.read_hwm_kib as f64 / 1024.0,
                fmt_ratio(ratio(r.recover_mb_s(), r.read_mb_s()))
            );
        }
    }

    fn strace_table(&self, w: &mut String) {
        if self.strace.is_empty() {
            return;
        }
        let _ = writeln!(w, "\n## System calls per commit (`strace -f -c`)\n");
        let _ = writeln!(
            w,
            "Each contender alone, 4 KiB pages, 1 page per commit, under `strace -f -c` (which slows every \
             system call a lot, so batching differs from the timed runs: read these as what a commit costs in \
             calls, not as speed). Calls per commit, the most frequent first.\n"
        );
        let _ = writeln!(
            w,
            "| contender | threads | commits | calls per commit |\n| --- | ---: | ---: | --- |"
        );
        for r in &self.strace {
            let label = r.kind.map(|k| k.label()).unwrap_or("?");
            if let Some(e) = &r.error {
                let _ = writeln!(
                    w,
                    "| {label} | {} | | error: {} |",
                    r.threads,
                    e.replace('|', "/")
                );
                continue;
            }
            let calls: Vec<String> = r
                .calls
                .iter()
                .take(8)
                .map(|(n, c)| format!("{n} {:.2}", *c as f64 / r.commits.max(1) as f64))
                .collect();
            let _ = writeln!(
                w,
                "| {label} | {} | {} | {} |",
                r.threads,
                r.commits,
                calls.join(", ")
            );
        }
    }

    /// Writes the two charts of every (pages, page size) measured.
    pub fn write_charts(&self, docs: &Path) -> std::io::Result<Vec<String>> {
        let mut written = Vec::new();
        for &ps in &self.page_sizes {
            for &pages in &self.pages {
                let kinds = self.kinds_in(pages, ps);
                if kinds.is_empty() {
                    continue;
                }
                for (metric, title, ylab, log_y) in [
                    (
                        "commits",
                        "commits per second",
                        "commits/s (log scale)",
                        true,
                    ),
                    (
                        "p99",
                        "p99 commit latency",
                        "p99 latency, us (log scale)",
                        true,
                    ),
                ] {
                    let pick = |m: &Metrics| {
                        if metric == "p99" {
                            m.p99_us
                        } else {
                            m.commits_per_s
                        }
                    };
                    let series: Vec<Series> = kinds
                        .iter()
                        .map(|&k| {
                            let points = if k.single_thread() {
                                let v = self.get(
                                    k,
                                    Cell {
                                        threads: 1,
                                        pages,
                                        page_size: ps,
                                    },
                                );
                                let y = v.map(|m| pick(&m));
                                match y {
                                    Some(y) => vec![
                                        (self.threads[0] as f64, y),
                                        (*self.threads.last().unwrap() as f64, y),
                                    ],
                                    None => vec![],
                                }
                            } else {
                                self.threads
                                    .iter()
                                    .filter_map(|&t| {
                                        self.get(
                                            k,
                                            Cell {
                                                threads: t,
                                                pages,
                                                page_size: ps,
                                            },
                                        )
                                        .map(|m| (t as f64, pick(&m)))
                                    })
                                    .collect()
                            };
                            Series {
                                label: k.label().to_string(),
                                color: color(k),
                                dashed: !k.durable() || k.single_thread(),
                                points,
                            }
                        })
                        .collect();
                    let svg = line_chart(
                        &format!("{title}: {} KiB pages, {pages} page(s)/commit", ps / 1024),
                        "writer threads (log scale)",
                        ylab,
                        XAxis::Threads(&self.threads),
                        &series,
                        log_y,
                        Some("dashed: not durable (*), floor"),
                    );
                    let name = chart_name(metric, pages, ps);
                    super::sys::write_file(&docs.join(&name), &svg)?;
                    written.push(name);
                }
            }
        }
        Ok(written)
    }
}

pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

fn nice_step(range: f64) -> f64 {
    let raw = range / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A tick label: 0, 500, 2k, 1.5M, 0.1.
fn axis_label(x: f64) -> String {
    let x = if x.abs() < 1e-9 { 0.0 } else { x };
    let (v, unit) = if x.abs() >= 1e6 {
        (x / 1e6, "M")
    } else if x.abs() >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let mut t = format!("{v:.1}");
    if t.ends_with(".0") {
        t.truncate(t.len() - 2);
    }
    format!("{t}{unit}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The x axis of [`line_chart`].
pub enum XAxis<'a> {
    /// Thread counts on a log2 scale, a tick and a marker at each.
    Threads(&'a [usize]),
    /// Linear from 0 to the given value (time), ticks at round steps.
    Linear(f64),
}

/// A line chart with a linear (from 0) or log10 y axis, legend on the
/// right, and `footnote` under the legend.
pub fn line_chart(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    xaxis: XAxis<'_>,
    series: &[Series],
    log_y: bool,
    footnote: Option<&str>,
) -> String {
    const W: f64 = 820.0;
    const H: f64 = 460.0;
    const L: f64 = 80.0;
    const R: f64 = 590.0;
    const T: f64 = 40.0;
    const B: f64 = 400.0;
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite() && (!log_y || *y > 0.0))
        .collect();
    let x_of = |x: f64| match xaxis {
        XAxis::Threads(xs) => {
            let x0 = (*xs.first().unwrap_or(&1) as f64).log2();
            let x1 = (*xs.last().unwrap_or(&64) as f64).log2().max(0.5);
            L + (x.log2() - x0) / (x1 - x0).max(1e-9) * (R - L)
        }
        XAxis::Linear(max) => L + x / max.max(1e-9) * (R - L),
    };
    let xticks: Vec<(f64, String)> = match xaxis {
        XAxis::Threads(xs) => xs.iter().map(|&x| (x as f64, x.to_string())).collect(),
        XAxis::Linear(max) => {
            let step = nice_step(max.max(1.0));
            (0..)
                .map(|i| i as f64 * step)
                .take_while(|&x| x <= max + 1e-9)
                .map(|x| (x, axis_label(x)))
                .collect()
        }
    };
    let markers = matches!(xaxis, XAxis::Threads(_));
    let ymax = ys.iter().cloned().fold(0.0, f64::max);
    let ymin = ys.iter().cloned().fold(f64::INFINITY, f64::min);
    let (lo, hi, step) = if log_y {
        let lo = if ymin.is_finite() {
            ymin.log10().floor()
        } else {
            0.0
        };
        let hi = if ymax > 0.0 {
            ymax.log10().ceil().max(lo + 1.0)
        } else {
            lo + 1.0
        };
        (lo, hi, 1.0)
    } else {
        let step = nice_step(ymax.max(1.0));
        (0.0, (ymax / step).ceil().max(1.0) * step, step)
    };
    let y_of = |y: f64| {
        let v = if log_y { y.max(1e-9).log10() } else { y };
        B - (v - lo) / (hi - lo) * (B - T)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        (L + R) / 2.0,
        esc(title)
    );
    // Grid and y ticks.
    let mut v = lo;
    while v <= hi + 1e-9 {
        let y = if log_y {
            B - (v - lo) / (hi - lo) * (B - T)
        } else {
            y_of(v)
        };
        let label = axis_label(if log_y { 10f64.powf(v) } else { v });
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{R}" y2="{y:.1}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            L - 6.0,
            y + 4.0
        );
        v += step;
    }
    for (x, label) in &xticks {
        let px = x_of(*x);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{T}" x2="{px:.1}" y2="{B}" stroke="#eee"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            B + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        R - L,
        B - T
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (L + R) / 2.0,
        B + 42.0,
        esc(xlabel)
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        (T + B) / 2.0,
        (T + B) / 2.0,
        esc(ylabel)
    );
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> = se
            .points
            .iter()
            .filter(|p| p.1.is_finite() && (!log_y || p.1 > 0.0))
            .map(|p| format!("{:.1},{:.1}", x_of(p.0), y_of(p.1)))
            .collect();
        let dash = if se.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                pts.join(" "),
                se.color
            );
            for p in pts.iter().filter(|_| markers) {
                let (x, y) = p.split_once(',').unwrap();
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x}" cy="{y}" r="3" fill="{}"/>"#,
                    se.color
                );
            }
        }
        let ly = T + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/>"#,
            R + 15.0,
            R + 40.0,
            se.color
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            R + 46.0,
            ly + 4.0,
            esc(&se.label)
        );
    }
    if let Some(note) = footnote {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" font-size="11" fill="#555">{}</text>"##,
            R + 15.0,
            T + 10.0 + series.len() as f64 * 20.0 + 6.0,
            esc(note)
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// The hand-written notes of an existing report, to carry into the new one.
/// The Markdown table of (target, measured, wanted, met) rows.
pub fn targets_table(rows: &[(String, String, String, bool)]) -> String {
    let mut w = String::from("| target | measured | wanted | met |\n| --- | --- | --- | --- |\n");
    for (what, m, want, ok) in rows {
        let _ = writeln!(
            w,
            "| {what} | {m} | {want} | {} |",
            if *ok { "yes" } else { "**no**" }
        );
    }
    w
}

pub fn kept_notes(existing: &str) -> Option<String> {
    let b = existing.find(NOTES_BEGIN)? + NOTES_BEGIN.len();
    let e = existing[b..].find(NOTES_END)? + b;
    Some(existing[b..e].trim_start_matches('\n').to_string())
}
