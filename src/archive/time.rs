//! RFC 3339 times (`2026-12-08T10:00:00Z`, `2026-12-08T11:00:00.5+01:00`)
//! to and from nanoseconds since the Unix epoch, for restore's time target
//! and the archive listing. UTC only on output.

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses an RFC 3339 date-time into nanoseconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("{s:?} is not an RFC 3339 time like 2026-12-08T10:00:00Z: {why}");
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(bad("too short"));
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let t = s.get(r).ok_or_else(|| bad("cut short"))?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("expected digits"));
        }
        t.parse::<i64>().map_err(|_| bad("expected digits"))
    };
    let sep = |i: usize, c: &[u8]| -> Result<(), String> {
        if c.contains(&b[i]) {
            Ok(())
        } else {
            Err(bad(&format!("expected {:?} at {i}", c[0] as char)))
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    sep(4, b"-")?;
    sep(7, b"-")?;
    sep(10, b"Tt ")?;
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    sep(13, b":")?;
    sep(16, b":")?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad("a field is out of range"));
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad("no digits after '.'"));
        }
        let digits = &s[start..i.min(start + 9)];
        frac_ns = digits.parse::<i64>().unwrap() * 10i64.pow(9 - digits.len() as u32);
    }
    let offset_s = match s.get(i..) {
        Some("Z") | Some("z") => 0,
        Some(o) if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            sep(i + 3, b":")?;
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return Err(bad("expected Z or an offset like +01:00 at the end")),
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86400 + h * 3600 + mi * 60 + se.min(59) - offset_s;
    if secs < 0 {
        return Err(bad("before 1970"));
    }
    Ok(secs as u64 * 1_000_000_000 + frac_ns as u64)
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 in UTC, with
/// microseconds.
pub fn format_rfc3339(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let micros = (ns % 1_000_000_000) / 1000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_format_and_bad_ones_are_named() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        let t = parse_rfc3339("2026-12-08T10:00:00Z").unwrap();
        assert_eq!(t, 1_796_724_000 * 1_000_000_000);
        assert_eq!(parse_rfc3339("2026-12-08T11:00:00+01:00").unwrap(), t);
        assert_eq!(
            parse_rfc3339("2026-12-08T10:00:00.25Z").unwrap(),
            t + 250_000_000
        );
        assert_eq!(
            format_rfc3339(t + 250_000_000),
            "2026-12-08T10:00:00.250000Z"
        );
        assert_eq!(
            parse_rfc3339(&format_rfc3339(t + 123_456_000)).unwrap(),
            t + 123_456_000
        );
        for bad in [
            "2026-12-08",
            "2026-13-08T10:00:00Z",
            "2026-12-08T10:00:00",
            "x",
        ] {
            assert!(
                parse_rfc3339(bad).unwrap_err().contains("RFC 3339"),
                "{bad}"
            );
        }
    }
}
