//! Time for the simulation: a `Now` passed into every step (so the simulation stays pure and
//! testable) and RFC 3339 timestamps for the JSON PD emits. Durations are read and printed by
//! `operator_runtime::duration`, as everywhere in the project.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A moment, both monotonic (for intervals such as "down after 10s") and wall-clock (for
/// timestamps in JSON).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic time, for intervals.
    pub instant: Instant,
    /// Wall-clock time, for timestamps.
    pub wall: SystemTime,
}

impl Now {
    /// The current moment.
    pub fn real() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// This moment moved forward by `by`.
    pub fn after(self, by: Duration) -> Self {
        Self {
            instant: self.instant + by,
            wall: self.wall + by,
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> u64 {
        unix_duration(self.wall)
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    }

    /// RFC 3339 with milliseconds, UTC.
    pub fn rfc3339(self) -> String {
        rfc3339(self.wall)
    }
}

fn unix_duration(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> i64 {
    unix_duration(t).as_secs().try_into().unwrap_or(i64::MAX)
}

/// Nanoseconds since the Unix epoch (PD's `last_heartbeat`).
pub fn unix_nanos(t: SystemTime) -> i64 {
    unix_duration(t).as_nanos().try_into().unwrap_or(i64::MAX)
}

/// RFC 3339 with milliseconds in UTC, e.g. `2025-01-02T03:04:05.678Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = unix_duration(t);
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_735_787_045_678);
        assert_eq!(rfc3339(t), "2025-01-02T03:04:05.678Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
