//! `docs/BENCHMARKS.md` is written by a benchmark run, except for its notes
//! section, which is kept by hand across reruns. A figure there would be a
//! figure of some other run beside this run's tables: the notes must quote
//! none (they point at the tables instead).

const UNITS: &[&str] = &[
    "x",
    "commits/s",
    "us",
    "ms",
    "ns",
    "s",
    "MB/s",
    "GB/s",
    "B",
    "%",
    "MiB",
    "GiB",
];

/// The figures in `text`: numbers with a decimal point or a thousands
/// separator, or followed by a unit. Names such as `p99`, `p99.9` or
/// `crc32c` (a digit right after a letter) and counts such as "16 writers"
/// or "4 KiB pages" (what a cell is, not what it measured) are not figures.
fn figures(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit()
            || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'))
        {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len()
            && (b[i].is_ascii_digit()
                || ((b[i] == b'.' || b[i] == b',') && i + 1 < b.len() && b[i + 1].is_ascii_digit()))
        {
            i += 1;
        }
        let number = &text[start..i];
        let rest = text[i..].trim_start_matches(' ');
        let unit = UNITS.iter().any(|u| {
            rest.starts_with(u)
                && !rest[u.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
        });
        // "4 KiB" names a page size, not a measurement.
        let page_size = rest.starts_with("KiB");
        if (number.contains('.') || number.contains(',') || unit) && !page_size {
            out.push(number.to_string());
        }
    }
    out
}

#[test]
fn the_hand_kept_notes_quote_no_figure() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/BENCHMARKS.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let begin = doc
        .find("<!-- notes:begin")
        .expect("BENCHMARKS.md has a notes section");
    let end = doc[begin..]
        .find("<!-- notes:end -->")
        .expect("the notes section ends")
        + begin;
    let found = figures(&doc[begin..end]);
    assert!(
        found.is_empty(),
        "figures in the hand-kept notes of docs/BENCHMARKS.md (quote the tables instead): {found:?}"
    );
}

#[test]
fn the_figure_finder_finds_figures_and_skips_names() {
    assert_eq!(
        figures("pwal was 0.96x the floor at 7924 commits/s; 1,200 runs; 36 MiB"),
        vec!["0.96", "7924", "1,200", "36"]
    );
    assert!(figures("p99 and p99.9 at 16 writers, 4 KiB pages, crc32c, 1-writer").is_empty());
}
