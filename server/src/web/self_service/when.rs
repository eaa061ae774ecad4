//! Times on the self-service pages: Danish local time (Europe/Copenhagen:
//! UTC+1, and UTC+2 from the last Sunday of March to the last Sunday of
//! October at 01:00 UTC, the EU rule) written the way each language writes
//! a date, and the time left ("in 58 min"). The server renders them, so a
//! page without JavaScript shows them too.

use crate::web::texts::{Lang, SelfServiceWords};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // In range by construction: 1..=31 and 1..=12.
    (y, d as u32, m as u32)
}

/// The last Sunday of month `m` (March or October: 31 days) of year `y`,
/// as days since 1970-01-01.
fn last_sunday_of(y: i64, m: u32) -> i64 {
    let last = days_from_civil(y, m, 31);
    // 1970-01-01 was a Thursday: weekday 0 = Sunday is (days + 4) mod 7.
    last - (last + 4).rem_euclid(7)
}

/// Copenhagen's offset from UTC at `utc_ms`.
fn offset_ms(utc_ms: i64) -> i64 {
    let (year, _, _) = civil_from_days(utc_ms.div_euclid(DAY_MS));
    let summer_from = last_sunday_of(year, 3) * DAY_MS + HOUR_MS;
    let summer_until = last_sunday_of(year, 10) * DAY_MS + HOUR_MS;
    if (summer_from..summer_until).contains(&utc_ms) {
        2 * HOUR_MS
    } else {
        HOUR_MS
    }
}

/// `at_ms` as Copenhagen time: "1. december 2026 kl. 15.04" or
/// "1 December 2026 at 15:04".
pub(crate) fn local_time(at_ms: u64, lang: Lang) -> String {
    let utc = i64::try_from(at_ms).unwrap_or(i64::MAX / 2);
    let local = utc + offset_ms(utc);
    let (y, d, m) = civil_from_days(local.div_euclid(DAY_MS));
    let in_day = local.rem_euclid(DAY_MS);
    let (hh, mm) = (in_day / HOUR_MS, (in_day % HOUR_MS) / MINUTE_MS);
    let w = lang.self_service();
    let month = w.months[(m - 1) as usize];
    match lang {
        Lang::Da => format!("{d}. {month} {y} {} {hh:02}.{mm:02}", w.at),
        Lang::En => format!("{d} {month} {y} {} {hh:02}:{mm:02}", w.at),
    }
}

/// `at_ms` as a date only ("1. december 2026", "1 December 2026").
pub(crate) fn local_date(at_ms: u64, lang: Lang) -> String {
    let utc = i64::try_from(at_ms).unwrap_or(i64::MAX / 2);
    let local = utc + offset_ms(utc);
    let (y, d, m) = civil_from_days(local.div_euclid(DAY_MS));
    let month = lang.self_service().months[(m - 1) as usize];
    match lang {
        Lang::Da => format!("{d}. {month} {y}"),
        Lang::En => format!("{d} {month} {y}"),
    }
}

/// The time from `now_ms` until `at_ms`, in whole minutes rounded up: "in
/// 58 min", "in 60 min", "in 1 h 5 min", or "now" once it has come.
pub(crate) fn time_until(now_ms: u64, at_ms: u64, w: &SelfServiceWords) -> String {
    if at_ms <= now_ms {
        return w.now.to_owned();
    }
    let minutes = (at_ms - now_ms).div_ceil(60_000);
    if minutes <= 60 {
        w.in_minutes.replace("{m}", &minutes.to_string())
    } else {
        w.in_hours
            .replace("{h}", &(minutes / 60).to_string())
            .replace("{m}", &(minutes % 60).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01 14:04:00 UTC.
    const WINTER: u64 = 1_796_133_840_000;
    /// 2026-07-01 10:00:00 UTC.
    const SUMMER: u64 = 1_782_900_000_000;

    #[test]
    fn winter_time_is_an_hour_ahead_of_utc_in_each_language_s_format() {
        assert_eq!(local_time(WINTER, Lang::Da), "1. december 2026 kl. 15.04");
        assert_eq!(local_time(WINTER, Lang::En), "1 December 2026 at 15:04");
        assert_eq!(local_date(WINTER, Lang::Da), "1. december 2026");
    }

    #[test]
    fn summer_time_is_two_hours_ahead_and_switches_at_one_utc_on_the_last_sundays() {
        assert_eq!(local_time(SUMMER, Lang::En), "1 July 2026 at 12:00");
        // 2026-03-29 is the last Sunday of March: 00:59 UTC is still winter.
        let switch = (days_from_civil(2026, 3, 29) * DAY_MS + HOUR_MS) as u64;
        assert_eq!(
            local_time(switch - 60_000, Lang::En),
            "29 March 2026 at 01:59"
        );
        assert_eq!(local_time(switch, Lang::En), "29 March 2026 at 03:00");
        // 2026-10-25: 01:00 UTC goes back from 03:00 to 02:00.
        let back = (days_from_civil(2026, 10, 25) * DAY_MS + HOUR_MS) as u64;
        assert_eq!(
            local_time(back - 60_000, Lang::En),
            "25 October 2026 at 02:59"
        );
        assert_eq!(local_time(back, Lang::En), "25 October 2026 at 02:00");
    }

    #[test]
    fn dates_round_trip_through_day_counts() {
        for days in [-1, 0, 59, 365, 11_016, 20_423, 100_000] {
            let (y, d, m) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn the_time_left_rounds_up_to_minutes_and_says_now_when_it_has_come() {
        let da = Lang::Da.self_service();
        let en = Lang::En.self_service();
        assert_eq!(time_until(0, 3_480_000, en), "in 58 min");
        assert_eq!(time_until(0, 3_479_001, da), "om 58 min");
        assert_eq!(time_until(0, 3_600_000, en), "in 60 min");
        assert_eq!(time_until(0, 3_900_000, en), "in 1 h 5 min");
        assert_eq!(time_until(10, 10, en), "now");
        assert_eq!(time_until(11, 10, da), "nu");
    }
}
