//! The one way durations are read and written, for every flag, field and message: Go's
//! `time.ParseDuration` syntax (`500ms`, `300s`, `1h30m`, `1.5h`), as the API's fields use it,
//! and Go's way of printing them (`45s`, `2m3s`, `1h0m5s`, `300ms`).

use std::time::Duration;

/// Parses a Go-style duration: one or more `<number><unit>` terms, units `ns`, `us` (or `µs`),
/// `ms`, `s`, `m`, `h`; decimals allowed (`1.5h`). `0` alone is zero. No sign.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?}: missing unit (ns, us, ms, s, m, h)"))?;
        if number_len == 0 {
            return Err(format!("{text:?}: expected a number at {rest:?}"));
        }
        let value: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("{text:?}: bad number {:?}", &rest[..number_len]))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("{text:?}: unknown unit {other:?}")),
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e12 {
        return Err(format!("{text:?}: too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// A command-line duration: what [`parse`] reads, and a bare number of seconds (`45`). For
/// `clap`'s `value_parser`.
pub fn parse_flag(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => parse(text).map_err(|e| format!("invalid duration {e}")),
    }
}

/// A duration as status and messages show it, in Go's style: `45s`, `2m3s`, `1h0m5s`; under a
/// second, in milliseconds (`300ms`).
pub fn format(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_string();
    }
    if duration < Duration::from_secs(1) {
        return format!("{}ms", duration.as_millis());
    }
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("72h").unwrap(), Duration::from_secs(72 * 3600));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("10").unwrap_err().contains("missing unit"));
        assert!(parse("10d").unwrap_err().contains("unknown unit"));
        assert!(parse("h").unwrap_err().contains("expected a number"));
        assert!(parse("-5s").is_err());
    }

    #[test]
    fn flags_also_take_bare_seconds() {
        assert_eq!(parse_flag("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_flag("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_flag("10x").unwrap_err().contains("invalid duration"));
    }

    #[test]
    fn status_durations_read_like_go() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(300)), "300ms");
        assert_eq!(format(Duration::from_secs(600)), "10m0s");
        assert_eq!(format(Duration::from_secs(45)), "45s");
        assert_eq!(format(Duration::from_secs(123)), "2m3s");
        assert_eq!(format(Duration::from_secs(3605)), "1h0m5s");
    }
}
