//! Moments and durations for people: the readable output says "at 14:05, in
//! 58 min" in the machine's time zone, never Unix milliseconds (the JSON keeps
//! the `_ms` fields the API has).

use chrono::{Local, TimeZone};

/// Now, in Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A moment in local time: `14:05` today, else `2026-12-02 14:05`.
pub(crate) fn local_time(at_ms: u64, now_ms: u64) -> String {
    let (Some(at), Some(now)) = (local(at_ms), local(now_ms)) else {
        return format!("{at_ms} ms after 1970 (out of the clock's range)");
    };
    if at.date_naive() == now.date_naive() {
        at.format("%H:%M").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// A moment with how far it is from now: `14:05, in 58 min`, `09:12, 3 min
/// ago` or `14:05, now`.
pub(crate) fn moment(at_ms: u64, now_ms: u64) -> String {
    let time = local_time(at_ms, now_ms);
    if at_ms > now_ms && at_ms - now_ms >= 1000 {
        format!("{time}, in {}", duration(at_ms - now_ms))
    } else if now_ms > at_ms && now_ms - at_ms >= 1000 {
        format!("{time}, {} ago", duration(now_ms - at_ms))
    } else {
        format!("{time}, now")
    }
}

/// A duration rounded up to what a person needs: `45 s`, `58 min`, `2 h 5
/// min`, `3 days`.
pub(crate) fn duration(ms: u64) -> String {
    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    if ms < MIN {
        format!("{} s", ms.div_ceil(1000).max(1))
    } else if ms < HOUR {
        format!("{} min", ms.div_ceil(MIN))
    } else if ms < 2 * DAY {
        let minutes = ms.div_ceil(MIN);
        match (minutes / 60, minutes % 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    } else {
        format!("{} days", ms.div_ceil(DAY))
    }
}

fn local(ms: u64) -> Option<chrono::DateTime<Local>> {
    Local.timestamp_millis_opt(i64::try_from(ms).ok()?).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_rounded_up_to_a_readable_unit() {
        assert_eq!(duration(0), "1 s");
        assert_eq!(duration(44_001), "45 s");
        assert_eq!(duration(57 * 60_000 + 1), "58 min");
        assert_eq!(duration(60 * 60_000), "1 h");
        assert_eq!(duration(125 * 60_000), "2 h 5 min");
        assert_eq!(duration(3 * 24 * 3_600_000), "3 days");
    }

    #[test]
    fn a_moment_says_how_far_it_is_from_now() {
        let now = 1_800_000_000_000;
        assert!(moment(now + 58 * 60_000, now).ends_with(", in 58 min"));
        assert!(moment(now - 3 * 60_000, now).ends_with(", 3 min ago"));
        assert!(moment(now, now).ends_with(", now"));
    }

    #[test]
    fn a_moment_on_another_day_carries_its_date() {
        let now = 1_800_000_000_000;
        let time = local_time(now + 3 * 24 * 3_600_000, now);
        assert_eq!(time.len(), "2027-01-18 10:40".len(), "{time}");
        assert_eq!(local_time(now, now).len(), "10:40".len());
    }
}
