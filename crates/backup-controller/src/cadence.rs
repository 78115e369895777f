//! The pure part of a BackupSchedule: its cron schedule (when the next Backup is due), the names
//! of the Backups it makes, and which of them retention removes.

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Occurrences looked through at most to find the latest one due (a schedule every second, a
/// controller down for a few hours).
const MAX_STEPS: usize = 100_000;

/// A parsed `spec.schedule`: standard five-field cron (`0 2 * * *`, evaluated in UTC), with an
/// optional leading seconds field (`*/10 * * * * *`), and the usual `@daily`-style nicknames.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
}

impl Schedule {
    /// Parses the expression, or says why it cannot be.
    pub fn parse(expression: &str) -> Result<Schedule, String> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        parser
            .parse(expression.trim())
            .map(|cron| Schedule { cron })
            .map_err(|e| format!("schedule {expression:?} is not a cron expression: {e}"))
    }

    /// The first time strictly after `after` the schedule fires.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(TimeZone::UTC);
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The latest time in `(last, now]` the schedule fired, if it fired since `last`: the one
    /// Backup to make now (runs missed while the controller was away are not made up).
    pub fn due(&self, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let mut latest = None;
        let mut cursor = last;
        for _ in 0..MAX_STEPS {
            match self.next_after(cursor) {
                Some(next) if next <= now => {
                    latest = Some(next);
                    cursor = next;
                }
                _ => return latest,
            }
        }
        latest
    }
}

/// Name of the Backup a schedule makes for the run at `at`: `<schedule>-YYYY-MM-DDtHH-MM-SS`
/// (UTC), as the reference names them.
pub fn backup_name(schedule: &str, at: Timestamp) -> String {
    format!("{schedule}-{}", at.strftime("%Y-%m-%dt%H-%M-%S"))
}

/// One Backup of a schedule as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created: Timestamp,
}

/// The Backups retention removes: with `max_reserved_time`, those created longer ago than that
/// (it takes precedence); else with `max_backups` > 0, all but the newest `max_backups`. The
/// newest Backup is never removed by age, so a schedule always keeps one.
pub fn to_remove(
    made: &[Made],
    max_backups: Option<i32>,
    max_reserved_time: Option<Duration>,
    now: Timestamp,
) -> Vec<String> {
    let mut sorted: Vec<&Made> = made.iter().collect();
    // Newest first; the name breaks ties (it holds the scheduled time).
    sorted.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    if let Some(keep_for) = max_reserved_time {
        let keep_for = SignedDuration::try_from(keep_for).unwrap_or(SignedDuration::MAX);
        return sorted
            .iter()
            .skip(1)
            .filter(|m| now.duration_since(m.created) > keep_for)
            .map(|m| m.name.clone())
            .collect();
    }
    match max_backups {
        Some(keep) if keep > 0 => sorted
            .iter()
            .skip(usize::try_from(keep).unwrap_or(usize::MAX))
            .map(|m| m.name.clone())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn five_field_cron_fires_in_utc() {
        let daily = Schedule::parse("0 2 * * *").unwrap();
        assert_eq!(
            daily.next_after(at("2024-03-01T01:00:00Z")),
            Some(at("2024-03-01T02:00:00Z"))
        );
        assert_eq!(
            daily.next_after(at("2024-03-01T02:00:00Z")),
            Some(at("2024-03-02T02:00:00Z"))
        );
        let weekly = Schedule::parse("30 4 * * 0").unwrap();
        // 2024-03-03 is a Sunday.
        assert_eq!(
            weekly.next_after(at("2024-03-01T00:00:00Z")),
            Some(at("2024-03-03T04:30:00Z"))
        );
        let nickname = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            nickname.next_after(at("2024-03-01T00:10:00Z")),
            Some(at("2024-03-01T01:00:00Z"))
        );
    }

    #[test]
    fn a_seconds_field_is_accepted() {
        let every_ten = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            every_ten.next_after(at("2024-03-01T00:00:03Z")),
            Some(at("2024-03-01T00:00:10Z"))
        );
    }

    #[test]
    fn only_the_latest_missed_run_is_due() {
        let every_minute = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every_minute.due(at("2024-03-01T00:00:00Z"), at("2024-03-01T00:00:59Z")),
            None
        );
        assert_eq!(
            every_minute.due(at("2024-03-01T00:00:00Z"), at("2024-03-01T00:05:30Z")),
            Some(at("2024-03-01T00:05:00Z"))
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in ["", "every day", "61 * * * *", "* * * *"] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains("not a cron expression"), "{bad}: {err}");
        }
    }

    #[test]
    fn names_carry_the_scheduled_time() {
        assert_eq!(
            backup_name("nightly", at("2024-03-01T02:00:00Z")),
            "nightly-2024-03-01t02-00-00"
        );
    }

    fn made(name: &str, created: &str) -> Made {
        Made {
            name: name.into(),
            created: at(created),
        }
    }

    #[test]
    fn max_backups_keeps_the_newest() {
        let all = [
            made("s-1", "2024-03-01T00:00:00Z"),
            made("s-3", "2024-03-03T00:00:00Z"),
            made("s-2", "2024-03-02T00:00:00Z"),
            made("s-4", "2024-03-04T00:00:00Z"),
        ];
        let now = at("2024-03-05T00:00:00Z");
        assert_eq!(to_remove(&all, Some(2), None, now), ["s-2", "s-1"]);
        assert!(to_remove(&all, Some(0), None, now).is_empty());
        assert!(to_remove(&all, None, None, now).is_empty());
        assert!(to_remove(&all, Some(10), None, now).is_empty());
    }

    #[test]
    fn max_reserved_time_wins_and_keeps_the_newest() {
        let all = [
            made("s-1", "2024-03-01T00:00:00Z"),
            made("s-2", "2024-03-02T00:00:00Z"),
            made("s-3", "2024-03-03T00:00:00Z"),
        ];
        let day = Duration::from_secs(86_400);
        let removed = to_remove(
            &all,
            Some(1),
            Some(day + day / 2),
            at("2024-03-03T12:00:00Z"),
        );
        assert_eq!(removed, ["s-1"]);
        // Everything expired: the newest stays.
        let removed = to_remove(&all, None, Some(day), at("2024-04-01T00:00:00Z"));
        assert_eq!(removed, ["s-2", "s-1"]);
    }
}
