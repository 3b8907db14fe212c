//! Business-hours calendars (`touchpoint::routing::calendar`) through the public API: weekly
//! hours, overrides and their precedence, next change, business-time arithmetic, the registry,
//! follow-the-sun, validation, and (with `--features tz`) daylight saving time in
//! Europe/Berlin and America/New_York on the real 2026 transition dates.
//!
//! The last section, `shifts`, has agents follow schedules in a router (`Agent::schedule`):
//! shift starts and ends on the router's clock, follow-the-sun handovers, late ticks, calendar
//! changes, unknown schedules, explanations, and a daylight-saving change in Europe/Berlin.
//!
//! Run: `cargo test --test routing_calendar` and `cargo test --features tz --test routing_calendar`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use touchpoint::Error;
use touchpoint::routing::calendar::*;

mod routing_common;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn secs(t: DateTime<Utc>, s: i64) -> DateTime<Utc> {
    t + Duration::seconds(s)
}

/// Mon–Fri 09:00–17:00 at +01:00 (so 08:00–16:00 UTC).
fn office(overrides: Vec<ScheduleOverride>) -> Schedule {
    let mut config = ScheduleConfig::new("support", "+01:00").hours("Mon-Fri", "09:00", "17:00");
    config.overrides = overrides;
    config.build().unwrap()
}

/// The `(field, reason)` of an `InvalidInput` error.
fn invalid(err: Error) -> (&'static str, String) {
    match err {
        Error::InvalidInput { field, reason } => (field, reason),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Weekly hours
// ---------------------------------------------------------------------------------------------

#[test]
fn weekly_hours_are_open_inside_and_closed_outside_in_local_time() {
    let s = ScheduleConfig::new("support", "+02:00")
        .hours("Mon-Fri", "09:00", "17:00")
        .hours("Sat", "10:00", "14:00")
        .build()
        .unwrap();
    // Monday 2026-03-02: 09:00–17:00 local is 07:00–15:00 UTC, end exclusive.
    assert!(!s.is_open(secs(utc(2026, 3, 2, 7, 0), -1)));
    assert!(s.is_open(utc(2026, 3, 2, 7, 0)));
    assert!(s.is_open(secs(utc(2026, 3, 2, 15, 0), -1)));
    assert!(!s.is_open(utc(2026, 3, 2, 15, 0)));
    // Monday 00:30 local is still Sunday in UTC: closed. Tuesday 10:30 local is open.
    assert!(!s.is_open(utc(2026, 3, 1, 22, 30)));
    assert!(s.is_open(utc(2026, 3, 3, 8, 30)));
    // Saturday has its own hours, Sunday none.
    assert!(s.is_open(utc(2026, 3, 7, 8, 0)));
    assert!(!s.is_open(utc(2026, 3, 7, 12, 0)));
    assert!(!s.is_open(utc(2026, 3, 8, 10, 0)));
    assert_eq!(s.state_at(utc(2026, 3, 7, 9, 0)).decided_by, DecidedBy::WeeklyHours { index: 1 });
    assert_eq!(s.state_at(utc(2026, 3, 8, 10, 0)).decided_by, DecidedBy::OutsideWeeklyHours);
}

#[test]
fn intervals_cross_midnight_including_sunday_into_monday() {
    let s = ScheduleConfig::new("night", "UTC")
        .hours("Fri", "22:00", "06:00")
        .hours("Sun", "20:00", "02:00")
        .hours("Tue", "18:00", "00:00")
        .build()
        .unwrap();
    assert!(!s.is_open(secs(utc(2026, 3, 6, 22, 0), -1)));
    assert!(s.is_open(utc(2026, 3, 6, 22, 0)));
    assert!(s.is_open(utc(2026, 3, 7, 5, 59)));
    assert!(!s.is_open(utc(2026, 3, 7, 6, 0)));
    // Sunday's interval ends on Monday of the next week.
    assert!(s.is_open(utc(2026, 3, 8, 20, 0)));
    assert!(s.is_open(utc(2026, 3, 9, 1, 59)));
    assert!(!s.is_open(utc(2026, 3, 9, 2, 0)));
    assert_eq!(s.state_at(utc(2026, 3, 9, 1, 0)).decided_by, DecidedBy::WeeklyHours { index: 1 });
    // An end of 00:00 is midnight of the next day.
    assert!(s.is_open(utc(2026, 3, 3, 23, 59)));
    assert!(!s.is_open(utc(2026, 3, 4, 0, 0)));
}

#[test]
fn whole_days_and_adjacent_intervals_merge_without_a_change_at_midnight() {
    let s = ScheduleConfig::new("weekend", "UTC")
        .hours("Sat", "00:00", "24:00")
        .hours("Sun", "00:00", "24:00")
        .build()
        .unwrap();
    assert!(s.is_open(utc(2026, 3, 7, 0, 0)));
    assert!(s.is_open(utc(2026, 3, 8, 0, 0)));
    assert!(!s.is_open(utc(2026, 3, 9, 0, 0)));
    // Saturday 10:00 → the next change is Monday 00:00, not Sunday midnight.
    assert_eq!(s.next_change(utc(2026, 3, 7, 10, 0)), Some(utc(2026, 3, 9, 0, 0)));
    // Overlapping weekly entries are all "open" and merge too.
    let overlapping =
        ScheduleConfig::new("o", "UTC").hours("Mon", "09:00", "13:00").hours("Mon", "12:00", "17:00").build().unwrap();
    assert_eq!(overlapping.next_change(utc(2026, 3, 9, 9, 0)), Some(utc(2026, 3, 9, 17, 0)));
    assert_eq!(
        overlapping.open_duration_between(utc(2026, 3, 9, 0, 0), utc(2026, 3, 10, 0, 0)).unwrap(),
        Duration::hours(8)
    );
}

#[test]
fn day_names_accept_ranges_full_names_and_lists() {
    let s = ScheduleConfig::new("s", "UTC")
        .hours("fri-MON", "10:00", "11:00")
        .hours("wednesday, Tue", "10:00", "11:00")
        .build()
        .unwrap();
    // 2026-03-02 is a Monday; only Thursday (03-05) is closed.
    let open: Vec<bool> = (2..=8).map(|d| s.is_open(utc(2026, 3, d, 10, 30))).collect();
    assert_eq!(open, [true, true, true, false, true, true, true]);
}

// ---------------------------------------------------------------------------------------------
// Overrides and precedence
// ---------------------------------------------------------------------------------------------

#[test]
fn a_holiday_beats_weekly_hours_for_the_whole_local_day() {
    let s = office(vec![ScheduleOverride::holiday("2026-12-25").named("Christmas Day")]);
    // Friday 2026-12-25 10:00 local would be open.
    let state = s.state_at(utc(2026, 12, 25, 9, 0));
    assert!(!state.open);
    assert_eq!(
        state.decided_by,
        DecidedBy::Override { index: 0, name: Some("Christmas Day".into()), level: OverrideLevel::Holiday }
    );
    assert_eq!(state.to_string(), "closed by holiday override \"Christmas Day\" (overrides[0])");
    assert!(s.is_open(utc(2026, 12, 24, 9, 0)));
    assert!(s.is_open(utc(2026, 12, 28, 9, 0)));

    // The date is a local day: at +01:00 it runs 2026-12-24 23:00 to 2026-12-25 23:00 UTC.
    let always = ScheduleConfig::new("always", "+01:00")
        .hours("Mon-Sun", "00:00", "24:00")
        .with_override(ScheduleOverride::holiday("2026-12-25"))
        .build()
        .unwrap();
    assert!(always.is_open(secs(utc(2026, 12, 24, 23, 0), -1)));
    assert!(!always.is_open(utc(2026, 12, 24, 23, 0)));
    assert!(!always.is_open(secs(utc(2026, 12, 25, 23, 0), -1)));
    assert!(always.is_open(utc(2026, 12, 25, 23, 0)));
}

#[test]
fn special_openings_and_closures_follow_their_levels() {
    let s = office(vec![
        ScheduleOverride::open("2026-12-20T10:00").until("2026-12-20T16:00").named("Shopping Sunday"),
        ScheduleOverride::closed("2026-12-20T12:00").until("2026-12-20T13:00").named("Lunch"),
        ScheduleOverride::closed("2026-12-16T09:00").until("2026-12-16T10:00").named("All hands"),
    ]);
    // Sunday has no weekly hours; the special opening opens it (10:00 local = 09:00Z).
    assert!(!s.is_open(utc(2026, 12, 20, 8, 59)));
    assert!(s.is_open(utc(2026, 12, 20, 9, 0)));
    // A closure at level `closed` beats the opening at level `open`.
    let lunch = s.state_at(utc(2026, 12, 20, 11, 30));
    assert!(!lunch.open);
    assert_eq!(
        lunch.decided_by,
        DecidedBy::Override { index: 1, name: Some("Lunch".into()), level: OverrideLevel::Closed }
    );
    assert!(s.is_open(utc(2026, 12, 20, 12, 0)));
    assert!(!s.is_open(utc(2026, 12, 20, 15, 0)));
    // A closure inside weekly hours.
    assert!(!s.is_open(utc(2026, 12, 16, 8, 30)));
    assert!(s.is_open(utc(2026, 12, 16, 9, 0)));
}

#[test]
fn a_holiday_beats_a_special_opening_and_an_emergency_beats_the_holiday() {
    let s = office(vec![
        ScheduleOverride::holiday("2026-12-24").until("2026-12-26").named("Christmas"),
        ScheduleOverride::open("2026-12-24T09:00").until("2026-12-24T12:00").named("Christmas Eve morning"),
        ScheduleOverride::emergency(OverrideState::Open, "2026-12-25T08:00:00Z")
            .until("2026-12-25T12:00:00Z")
            .named("Outage line"),
        ScheduleOverride::emergency(OverrideState::Closed, "2026-12-21").named("Flood"),
    ]);
    // The special opening (level open) loses to the holiday.
    assert!(!s.is_open(utc(2026, 12, 24, 9, 0)));
    // The emergency opening beats the holiday.
    let state = s.state_at(utc(2026, 12, 25, 10, 0));
    assert!(state.open);
    assert_eq!(
        state.decided_by,
        DecidedBy::Override { index: 2, name: Some("Outage line".into()), level: OverrideLevel::Emergency }
    );
    assert!(!s.is_open(utc(2026, 12, 25, 12, 0)));
    assert_eq!(
        s.state_at(utc(2026, 12, 25, 12, 0)).decided_by,
        DecidedBy::Override { index: 0, name: Some("Christmas".into()), level: OverrideLevel::Holiday }
    );
    // An emergency closure beats weekly hours on Monday.
    assert!(!s.is_open(utc(2026, 12, 21, 10, 0)));
    assert!(s.is_open(utc(2026, 12, 22, 10, 0)));
}

#[test]
fn overlapping_overrides_that_agree_or_differ_in_level_are_accepted() {
    let s = office(vec![
        ScheduleOverride::closed("2026-05-01").named("Labour Day"),
        ScheduleOverride::closed("2026-05-01T10:00").until("2026-05-01T11:00"),
        ScheduleOverride::open("2026-05-01T12:00").until("2026-05-01T13:00").at_level(OverrideLevel::Holiday),
    ]);
    assert!(!s.is_open(utc(2026, 5, 1, 9, 0)));
    assert!(s.is_open(utc(2026, 5, 1, 11, 0)));
}

// ---------------------------------------------------------------------------------------------
// Next change
// ---------------------------------------------------------------------------------------------

#[test]
fn next_change_crosses_a_weekend() {
    let s = office(vec![]);
    let friday = utc(2026, 3, 6, 15, 0); // 16:00 local
    let closes = s.next_change(friday).unwrap();
    assert_eq!(closes, utc(2026, 3, 6, 16, 0));
    assert_eq!(s.next_change(closes), Some(utc(2026, 3, 9, 8, 0)));
    assert_eq!(s.next_change(utc(2026, 3, 7, 12, 0)), Some(utc(2026, 3, 9, 8, 0)));
    // Strictly after: at the opening instant itself the next change is the closing.
    assert_eq!(s.next_change(utc(2026, 3, 9, 8, 0)), Some(utc(2026, 3, 9, 16, 0)));
}

#[test]
fn next_change_crosses_a_holiday_and_stops_at_an_emergency_opening() {
    let s = office(vec![ScheduleOverride::holiday("2026-12-24").until("2026-12-26")]);
    let wednesday = utc(2026, 12, 23, 15, 0);
    assert_eq!(s.next_change(wednesday), Some(utc(2026, 12, 23, 16, 0)));
    assert_eq!(s.next_change(utc(2026, 12, 23, 16, 0)), Some(utc(2026, 12, 28, 8, 0)));
    assert_eq!(s.next_change(utc(2026, 12, 25, 10, 0)), Some(utc(2026, 12, 28, 8, 0)));

    let with_emergency = office(vec![
        ScheduleOverride::holiday("2026-12-24").until("2026-12-26"),
        ScheduleOverride::emergency(OverrideState::Open, "2026-12-25T08:00:00Z").until("2026-12-25T12:00:00Z"),
    ]);
    let mut changes = vec![];
    let mut t = wednesday;
    for _ in 0..4 {
        t = with_emergency.next_change(t).unwrap();
        changes.push(t);
    }
    assert_eq!(
        changes,
        [utc(2026, 12, 23, 16, 0), utc(2026, 12, 25, 8, 0), utc(2026, 12, 25, 12, 0), utc(2026, 12, 28, 8, 0)]
    );
}

#[test]
fn next_change_is_none_when_nothing_changes_within_the_horizon() {
    let always = ScheduleConfig::new("always", "UTC").hours("Mon-Sun", "00:00", "24:00").build().unwrap();
    assert_eq!(always.next_change(utc(2026, 3, 2, 0, 0)), None);
    let never = ScheduleConfig::new("never", "UTC").build().unwrap();
    assert_eq!(never.next_change(utc(2026, 3, 2, 0, 0)), None);

    // Closed until an opening two years out: beyond the default horizon, within a longer one.
    let later = ScheduleConfig::new("later", "UTC")
        .with_override(ScheduleOverride::open("2028-03-01").named("Grand opening"))
        .build()
        .unwrap();
    let now = utc(2026, 3, 2, 0, 0);
    assert_eq!(later.next_change(now), None);
    assert_eq!(later.next_change_within(now, Duration::days(800)).unwrap(), Some(utc(2028, 3, 1, 0, 0)));
    let (field, _) = invalid(later.next_change_within(now, Duration::days(-1)).unwrap_err());
    assert_eq!(field, "within");
    let (field, _) = invalid(later.next_change_within(now, Duration::days(SEARCH_LIMIT_DAYS + 1)).unwrap_err());
    assert_eq!(field, "within");
}

#[test]
fn year_boundaries_and_far_years_behave_like_any_other_day() {
    // Open across New Year's midnight: no change at the year boundary.
    let s = ScheduleConfig::new("s", "UTC").hours("Mon-Sun", "22:00", "02:00").build().unwrap();
    assert_eq!(s.next_change(utc(2026, 12, 31, 23, 0)), Some(utc(2027, 1, 1, 2, 0)));
    assert_eq!(s.open_duration_between(utc(2026, 12, 31, 0, 0), utc(2027, 1, 2, 0, 0)).unwrap(), Duration::hours(8));

    // Weekly hours repeat in years before 1970 and after 2199 (evaluated from the rules there).
    let office = ScheduleConfig::new("o", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
    for monday in [utc(1969, 12, 29, 0, 0), utc(2026, 3, 2, 0, 0), utc(2199, 12, 30, 0, 0), utc(2200, 1, 6, 0, 0)] {
        let next = |t| office.next_change(t).unwrap();
        assert_eq!(next(monday), monday + Duration::hours(9), "{monday}");
        assert_eq!(next(monday + Duration::hours(9)), monday + Duration::hours(17), "{monday}");
        assert!(office.is_open(monday + Duration::hours(10)), "{monday}");
        assert!(!office.is_open(monday + Duration::hours(5 * 24 + 10)), "{monday}");
        assert_eq!(office.open_duration_between(monday, monday + Duration::days(7)).unwrap(), Duration::hours(40));
    }

    // Walking from the last cached year into the next one.
    let s = ScheduleConfig::new("s", "UTC")
        .hours("Mon-Sun", "00:00", "24:00")
        .with_override(ScheduleOverride::holiday("2200-01-01"))
        .build()
        .unwrap();
    assert_eq!(s.next_change(utc(2199, 12, 31, 12, 0)), Some(utc(2200, 1, 1, 0, 0)));
    assert_eq!(s.next_change(utc(2200, 1, 1, 0, 0)), Some(utc(2200, 1, 2, 0, 0)));
    assert_eq!(s.open_duration_between(utc(2199, 12, 31, 0, 0), utc(2200, 1, 3, 0, 0)).unwrap(), Duration::hours(48));
    assert_eq!(
        s.add_business_time(utc(2199, 12, 31, 12, 0), Duration::hours(13)).unwrap(),
        Some(utc(2200, 1, 2, 1, 0))
    );
}

// ---------------------------------------------------------------------------------------------
// Business time
// ---------------------------------------------------------------------------------------------

#[test]
fn open_duration_counts_only_business_time() {
    let s = office(vec![]);
    // Friday 16:00 local → Monday 11:00 local: 1 h on Friday, 2 h on Monday.
    assert_eq!(s.open_duration_between(utc(2026, 3, 6, 15, 0), utc(2026, 3, 9, 10, 0)).unwrap(), Duration::hours(3));
    assert_eq!(s.open_duration_between(utc(2026, 3, 2, 0, 0), utc(2026, 3, 9, 0, 0)).unwrap(), Duration::hours(40));
    assert_eq!(s.open_duration_between(utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 9, 30)).unwrap(), Duration::minutes(30));
    assert_eq!(s.open_duration_between(utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 9, 0)).unwrap(), Duration::zero());

    let christmas = office(vec![
        ScheduleOverride::holiday("2026-12-24").until("2026-12-25"),
        ScheduleOverride::emergency(OverrideState::Open, "2026-12-25T08:00:00Z").until("2026-12-25T12:00:00Z"),
    ]);
    // Mon–Wed 3 × 8 h, Thu–Fri holiday except 4 h of emergency opening.
    assert_eq!(
        christmas.open_duration_between(utc(2026, 12, 21, 0, 0), utc(2026, 12, 28, 0, 0)).unwrap(),
        Duration::hours(28)
    );
}

#[test]
fn open_duration_refuses_reversed_or_overlong_ranges() {
    let s = office(vec![]);
    let (field, reason) = invalid(s.open_duration_between(utc(2026, 3, 9, 0, 0), utc(2026, 3, 2, 0, 0)).unwrap_err());
    assert_eq!(field, "to");
    assert!(reason.contains("before it starts"), "{reason}");
    let (field, _) = invalid(s.open_duration_between(utc(2000, 1, 1, 0, 0), utc(2030, 1, 1, 0, 0)).unwrap_err());
    assert_eq!(field, "to");
}

#[test]
fn add_business_time_gives_sla_due_times_in_business_hours() {
    let s = office(vec![ScheduleOverride::holiday("2026-12-24").until("2026-12-25")]);
    // Friday 16:00 local + 3 h → 1 h on Friday, 2 h on Monday → Monday 11:00 local.
    assert_eq!(s.add_business_time(utc(2026, 3, 6, 15, 0), Duration::hours(3)).unwrap(), Some(utc(2026, 3, 9, 10, 0)));
    // Exactly the rest of the day is due at closing time (the earliest instant).
    assert_eq!(s.add_business_time(utc(2026, 3, 6, 15, 0), Duration::hours(1)).unwrap(), Some(utc(2026, 3, 6, 16, 0)));
    // Starting while closed: the clock starts at the next opening.
    assert_eq!(s.add_business_time(utc(2026, 3, 7, 12, 0), Duration::hours(1)).unwrap(), Some(utc(2026, 3, 9, 9, 0)));
    // Across Christmas: 1 h on Wednesday, then Monday.
    assert_eq!(
        s.add_business_time(utc(2026, 12, 23, 15, 0), Duration::hours(2)).unwrap(),
        Some(utc(2026, 12, 28, 9, 0))
    );
    // A full working week (40 h) from Monday 09:00 local ends Friday 17:00 local.
    assert_eq!(s.add_business_time(utc(2026, 3, 2, 8, 0), Duration::hours(40)).unwrap(), Some(utc(2026, 3, 6, 16, 0)));
    // Zero is due at once; negative is refused.
    assert_eq!(s.add_business_time(utc(2026, 3, 7, 12, 0), Duration::zero()).unwrap(), Some(utc(2026, 3, 7, 12, 0)));
    let (field, _) = invalid(s.add_business_time(utc(2026, 3, 7, 12, 0), Duration::hours(-1)).unwrap_err());
    assert_eq!(field, "amount");
    // A schedule that never opens has no due time.
    let never = ScheduleConfig::new("never", "UTC").build().unwrap();
    assert_eq!(never.add_business_time(utc(2026, 3, 7, 12, 0), Duration::hours(1)).unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn base() -> Value {
    json!({
        "name": "support",
        "time_zone": "+01:00",
        "weekly": [
            { "days": ["Mon-Fri"], "start": "09:00", "end": "17:00" },
            { "days": ["Sat"], "start": "10:00", "end": "14:00" }
        ],
        "overrides": [
            { "name": "Christmas", "from": "2026-12-24", "to": "2026-12-26", "state": "closed", "level": "holiday" }
        ]
    })
}

fn with(path: &[&str], value: Value) -> Value {
    let mut doc = base();
    let mut target = &mut doc;
    for key in path {
        target = match key.parse::<usize>() {
            Ok(i) => &mut target[i],
            Err(_) => &mut target[*key],
        };
    }
    *target = value;
    doc
}

#[test]
fn the_base_document_is_valid() {
    assert!(Schedule::from_json(&base().to_string()).is_ok());
}

#[test]
fn invalid_schedules_are_typed_errors_naming_the_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(&["name"], json!("")), "name", "name"),
        (with(&["name"], json!("x".repeat(200))), "name", "name"),
        (with(&["time_zone"], json!("")), "time_zone", "time_zone"),
        (with(&["time_zone"], json!("Mars/Olympus")), "time_zone", "time_zone"),
        (with(&["time_zone"], json!("+19:00")), "time_zone", "time_zone"),
        (with(&["time_zone"], json!("+02:75")), "time_zone", "time_zone"),
        (with(&["weekly", "0", "days"], json!([])), "weekly.days", "weekly[0].days"),
        (with(&["weekly", "1", "days"], json!(["Sat", "Funday"])), "weekly.days", "weekly[1].days[1]"),
        (with(&["weekly", "0", "days"], json!(["Mon-"])), "weekly.days", "weekly[0].days[0]"),
        (with(&["weekly", "0", "start"], json!("25:00")), "weekly.start", "weekly[0].start"),
        (with(&["weekly", "0", "start"], json!("9am")), "weekly.start", "weekly[0].start"),
        (with(&["weekly", "0", "start"], json!("24:00")), "weekly.start", "weekly[0].start"),
        (with(&["weekly", "1", "end"], json!("17:60")), "weekly.end", "weekly[1].end"),
        (with(&["weekly", "1", "end"], json!("14:00:00:00")), "weekly.end", "weekly[1].end"),
        (with(&["weekly", "1", "end"], json!("10:00")), "weekly.end", "weekly[1].end"),
        (with(&["overrides", "0", "from"], json!("2026-02-30")), "overrides.from", "overrides[0].from"),
        (with(&["overrides", "0", "from"], json!("next friday")), "overrides.from", "overrides[0].from"),
        (with(&["overrides", "0", "to"], json!("2026-13-01")), "overrides.to", "overrides[0].to"),
        (with(&["overrides", "0", "to"], json!("2026-12-23")), "overrides.to", "overrides[0].to"),
        (with(&["overrides", "0", "name"], json!("")), "overrides.name", "overrides[0].name"),
        (
            with(&["overrides", "0"], json!({ "from": "2026-12-24T09:00", "state": "closed" })),
            "overrides.to",
            "overrides[0].to",
        ),
        (
            with(
                &["overrides"],
                json!([
                    { "from": "2026-12-24", "to": "2026-12-26", "state": "closed", "level": "holiday" },
                    { "name": "Eve", "from": "2026-12-24T09:00", "to": "2026-12-24T12:00", "state": "open", "level": "holiday" }
                ]),
            ),
            "overrides",
            "overrides[1]",
        ),
    ];
    for (doc, field, path) in cases {
        let err = Schedule::from_json(&doc.to_string()).expect_err(&doc.to_string());
        let (got_field, reason) = invalid(err);
        assert_eq!(got_field, field, "{doc}: {reason}");
        let label: String = doc["name"].as_str().unwrap_or_default().chars().take(MAX_NAME_LEN).collect();
        assert!(reason.starts_with(&format!("schedule {label:?}: {path}: ")), "{doc}: {reason}");
        // Deserialising a Schedule directly applies the same validation.
        let serde_err = serde_json::from_value::<Schedule>(doc.clone()).expect_err(&doc.to_string());
        assert!(serde_err.to_string().contains(path), "{serde_err}");
    }
}

#[test]
fn contradicting_overrides_name_both_entries() {
    let doc = with(
        &["overrides"],
        json!([
            { "name": "Team day", "from": "2026-06-01", "state": "closed" },
            { "name": "Launch", "from": "2026-06-01T10:00", "to": "2026-06-01T11:00", "state": "open", "level": "closed" }
        ]),
    );
    let (_, reason) = invalid(Schedule::from_json(&doc.to_string()).unwrap_err());
    assert!(
        reason.contains("\"Team day\"") && reason.contains("\"Launch\"") && reason.contains("same level"),
        "{reason}"
    );
}

#[test]
fn malformed_documents_are_typed_errors() {
    for doc in [
        "{",
        r#"{"name": "support", "time_zone": "UTC", "weekly": "Mon"}"#,
        r#"{"name": "support", "time_zone": "UTC", "overides": []}"#,
        r#"{"name": "support", "time_zone": "UTC", "overrides": [{"from": "2026-01-01", "state": "closd"}]}"#,
        r#"{"name": "support", "time_zone": "UTC", "overrides": [{"from": "2026-01-01", "state": "closed", "level": "urgent"}]}"#,
        r#"{"time_zone": "UTC"}"#,
    ] {
        let (field, reason) = invalid(Schedule::from_json(doc).unwrap_err());
        assert_eq!(field, "schedule", "{doc}");
        assert!(reason.starts_with("not a valid schedule document"), "{reason}");
    }
}

#[test]
fn entry_counts_are_limited() {
    let overrides: Vec<Value> =
        (0..=MAX_OVERRIDES).map(|_| json!({ "from": "2026-01-01", "state": "closed" })).collect();
    let (field, _) = invalid(Schedule::from_json(&with(&["overrides"], json!(overrides)).to_string()).unwrap_err());
    assert_eq!(field, "overrides");
    let weekly: Vec<Value> =
        (0..=MAX_WEEKLY_HOURS).map(|_| json!({ "days": ["Mon"], "start": "09:00", "end": "10:00" })).collect();
    let (field, _) = invalid(Schedule::from_json(&with(&["weekly"], json!(weekly)).to_string()).unwrap_err());
    assert_eq!(field, "weekly");
}

#[test]
fn fixed_offsets_and_utc_are_always_available() {
    for (zone, local_nine_in_utc) in [
        ("UTC", utc(2026, 3, 2, 9, 0)),
        ("Etc/UTC", utc(2026, 3, 2, 9, 0)),
        ("+05:30", utc(2026, 3, 2, 3, 30)),
        ("UTC-03:00", utc(2026, 3, 2, 12, 0)),
        ("-0800", utc(2026, 3, 2, 17, 0)),
        ("+02", utc(2026, 3, 2, 7, 0)),
    ] {
        let s = ScheduleConfig::new("s", zone).hours("Mon", "09:00", "10:00").build().unwrap();
        assert!(s.is_open(local_nine_in_utc), "{zone}");
        assert!(!s.is_open(secs(local_nine_in_utc, -1)), "{zone}");
    }
}

#[cfg(not(feature = "tz"))]
#[test]
fn iana_names_need_the_tz_feature() {
    let (field, reason) = invalid(ScheduleConfig::new("s", "Europe/Berlin").build().unwrap_err());
    assert_eq!(field, "time_zone");
    assert!(reason.contains("`tz`"), "{reason}");
}

#[cfg(feature = "tz")]
#[test]
fn iana_names_are_checked_against_the_zone_database() {
    assert!(ScheduleConfig::new("s", "America/Argentina/Buenos_Aires").build().is_ok());
    for bad in ["Europe/Berln", "europe/berlin", "Mars/Olympus"] {
        let (field, reason) = invalid(ScheduleConfig::new("s", bad).build().unwrap_err());
        assert_eq!(field, "time_zone");
        assert!(reason.contains("not a known IANA time zone"), "{reason}");
    }
}

// ---------------------------------------------------------------------------------------------
// Serde
// ---------------------------------------------------------------------------------------------

#[test]
fn schedules_round_trip_through_json_and_toml() {
    let schedule = Schedule::from_json(&base().to_string()).unwrap();
    assert_eq!(serde_json::to_value(&schedule).unwrap(), base());
    let toml_text = toml::to_string(&schedule).unwrap();
    let from_toml: Schedule = toml::from_str(&toml_text).unwrap();
    assert_eq!(from_toml, schedule);

    let written = r#"
        name = "support"
        time_zone = "+01:00"

        [[weekly]]
        days = ["Mon-Fri"]
        start = "09:00"
        end = "17:00"

        [[overrides]]
        name = "Christmas"
        from = "2026-12-24"
        to = "2026-12-26"
        state = "closed"
        level = "holiday"
    "#;
    let s: Schedule = toml::from_str(written).unwrap();
    assert!(!s.is_open(utc(2026, 12, 24, 9, 0)));
    assert!(s.is_open(utc(2026, 12, 23, 9, 0)));
    let bad = written.replace("\"17:00\"", "\"17:75\"");
    let err = toml::from_str::<Schedule>(&bad).unwrap_err();
    assert!(err.to_string().contains("weekly[0].end"), "{err}");
}

#[test]
fn explanations_serialise_for_logs() {
    let s = office(vec![ScheduleOverride::holiday("2026-12-25").named("Christmas Day")]);
    let state = s.state_at(utc(2026, 12, 25, 9, 0));
    assert_eq!(
        serde_json::to_value(&state).unwrap(),
        json!({ "open": false, "decided_by": { "rule": "override", "index": 0, "name": "Christmas Day", "level": "holiday" } })
    );
    assert_eq!(s.state_at(utc(2026, 12, 23, 9, 0)).to_string(), "open by weekly hours (weekly[0])");
}

// ---------------------------------------------------------------------------------------------
// Registry and follow-the-sun
// ---------------------------------------------------------------------------------------------

#[test]
fn calendars_look_schedules_up_by_name() {
    let mut calendars = Calendars::from_schedules([
        office(vec![]),
        ScheduleConfig::new("sales", "UTC").hours("Mon-Sat", "10:00", "18:00").build().unwrap(),
    ])
    .unwrap();
    let saturday = utc(2026, 3, 7, 12, 0);
    assert!(!calendars.is_open("support", saturday).unwrap());
    assert!(calendars.is_open("sales", saturday).unwrap());
    assert_eq!(calendars.state_at("support", saturday).unwrap().decided_by, DecidedBy::OutsideWeeklyHours);
    match calendars.is_open("billing", saturday) {
        Err(Error::NotFound { entity, id }) => {
            assert_eq!(entity, "schedule");
            assert!(id.contains("billing"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(calendars.state_at("billing", saturday), Err(Error::NotFound { .. })));
    assert_eq!(calendars.names().collect::<Vec<_>>(), ["sales", "support"]);

    // Inserting under an existing name replaces it.
    let replaced = calendars.insert(ScheduleConfig::new("sales", "UTC").build().unwrap());
    assert!(replaced.is_some());
    assert!(!calendars.is_open("sales", saturday).unwrap());
    assert_eq!(calendars.len(), 2);
    assert!(calendars.remove("sales").is_some());
    assert!(calendars.get("sales").is_none());
}

#[test]
fn calendars_refuse_duplicate_names_and_round_trip() {
    let (field, _) = invalid(Calendars::from_schedules([office(vec![]), office(vec![])]).unwrap_err());
    assert_eq!(field, "calendars");
    let doc = json!([base(), base()]);
    assert!(serde_json::from_value::<Calendars>(doc).is_err());

    let calendars = Calendars::from_schedules([office(vec![])]).unwrap();
    let text = serde_json::to_string(&calendars).unwrap();
    assert_eq!(serde_json::from_str::<Calendars>(&text).unwrap(), calendars);
}

#[test]
fn follow_the_sun_finds_the_open_regions_and_the_next_to_open() {
    let calendars = Calendars::from_schedules([
        ScheduleConfig::new("apac", "+10:00").hours("Mon-Fri", "08:00", "17:00").build().unwrap(),
        ScheduleConfig::new("emea", "+01:00").hours("Mon-Fri", "08:00", "17:00").build().unwrap(),
        ScheduleConfig::new("amer", "-05:00").hours("Mon-Fri", "08:00", "17:00").build().unwrap(),
    ])
    .unwrap();
    let names = |v: Vec<&Schedule>| v.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>();
    // Tuesday 2026-03-03 06:30 UTC: APAC 16:30 (open), EMEA 07:30, AMER 01:30.
    let t = utc(2026, 3, 3, 6, 30);
    assert_eq!(names(calendars.open_at(t)), ["apac"]);
    let next = calendars.next_to_open(t).unwrap();
    assert_eq!((next.schedule.name(), next.at), ("emea", utc(2026, 3, 3, 7, 0)));
    // 15:30 UTC: EMEA (16:30) and AMER (10:30) overlap.
    assert_eq!(names(calendars.open_at(utc(2026, 3, 3, 15, 30))), ["amer", "emea"]);
    // Friday 23:00 UTC: everyone is closed until APAC's Monday (Sunday 22:00 UTC).
    let weekend = utc(2026, 3, 6, 23, 0);
    assert!(calendars.open_at(weekend).is_empty());
    let next = calendars.next_to_open(weekend).unwrap();
    assert_eq!((next.schedule.name(), next.at), ("apac", utc(2026, 3, 8, 22, 0)));
    // With every schedule open there is nothing to open next.
    let always = [ScheduleConfig::new("a", "UTC").hours("Mon-Sun", "00:00", "24:00").build().unwrap()];
    assert_eq!(next_to_open(&always, t), None);
    assert_eq!(names(open_schedules(&always, t)), ["a"]);
}

#[test]
fn schedules_and_calendars_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Schedule>();
    send_sync::<Calendars>();
    send_sync::<ScheduleState>();
    send_sync::<Opening<'static>>();
}

// ---------------------------------------------------------------------------------------------
// Daylight saving time (tz feature)
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "tz")]
mod dst {
    use super::*;

    fn sunday(zone: &str, start: &str, end: &str) -> Schedule {
        ScheduleConfig::new("s", zone).hours("Sun", start, end).build().unwrap()
    }

    #[test]
    fn berlin_spring_forward_opens_at_the_first_instant_after_the_gap() {
        // 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST.
        let s = sunday("Europe/Berlin", "02:30", "05:00");
        assert!(!s.is_open(secs(utc(2026, 3, 29, 1, 0), -1)));
        assert!(s.is_open(utc(2026, 3, 29, 1, 0)));
        assert!(s.is_open(secs(utc(2026, 3, 29, 3, 0), -1)));
        assert!(!s.is_open(utc(2026, 3, 29, 3, 0))); // 05:00 CEST
        assert_eq!(s.next_change(utc(2026, 3, 28, 12, 0)), Some(utc(2026, 3, 29, 1, 0)));
        // The week before (CET) the same hours are 01:30Z–04:00Z.
        assert_eq!(
            s.open_duration_between(utc(2026, 3, 22, 0, 0), utc(2026, 3, 23, 0, 0)).unwrap(),
            Duration::minutes(150)
        );
        assert_eq!(
            s.open_duration_between(utc(2026, 3, 29, 0, 0), utc(2026, 3, 30, 0, 0)).unwrap(),
            Duration::hours(2)
        );

        // 01:00–04:00 local that night is two hours of real time.
        let across = sunday("Europe/Berlin", "01:00", "04:00");
        assert_eq!(
            across.open_duration_between(utc(2026, 3, 29, 0, 0), utc(2026, 3, 30, 0, 0)).unwrap(),
            Duration::hours(2)
        );
        // An interval entirely inside the gap does not open that day, but does a week later.
        let inside = sunday("Europe/Berlin", "02:00", "02:30");
        assert_eq!(
            inside.open_duration_between(utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0)).unwrap(),
            Duration::zero()
        );
        assert_eq!(inside.next_change(utc(2026, 3, 28, 0, 0)), Some(utc(2026, 4, 5, 0, 0)));
    }

    #[test]
    fn berlin_fall_back_follows_the_wall_clock_through_the_repeated_hour() {
        // 2026-10-25: 03:00 CEST (01:00Z) falls back to 02:00 CET; 02:00–03:00 happens twice.
        let s = sunday("Europe/Berlin", "02:00", "03:00");
        // From the first 02:00 (CEST, 00:00Z) to 03:00 CET (02:00Z): two hours.
        assert_eq!(s.next_change(utc(2026, 10, 24, 12, 0)), Some(utc(2026, 10, 25, 0, 0)));
        assert_eq!(s.next_change(utc(2026, 10, 25, 0, 0)), Some(utc(2026, 10, 25, 2, 0)));
        assert_eq!(
            s.open_duration_between(utc(2026, 10, 25, 0, 0), utc(2026, 10, 26, 0, 0)).unwrap(),
            Duration::hours(2)
        );

        // 01:00–02:30 ends at the *last* 02:30 (CET), with no closed stretch in between even
        // though the wall clock passes 02:30 CEST first.
        let s = sunday("Europe/Berlin", "01:00", "02:30");
        assert!(s.is_open(utc(2026, 10, 24, 23, 0))); // 01:00 CEST
        assert!(s.is_open(utc(2026, 10, 25, 0, 45))); // 02:45 CEST
        assert!(s.is_open(secs(utc(2026, 10, 25, 1, 30), -1))); // 02:29:59 CET
        assert!(!s.is_open(utc(2026, 10, 25, 1, 30)));
        assert_eq!(
            s.open_duration_between(utc(2026, 10, 24, 0, 0), utc(2026, 10, 26, 0, 0)).unwrap(),
            Duration::minutes(150)
        );
    }

    #[test]
    fn new_york_spring_forward_opens_at_the_first_instant_after_the_gap() {
        // 2026-03-08: 02:00 EST (07:00Z) jumps to 03:00 EDT.
        let s = sunday("America/New_York", "02:15", "06:00");
        assert!(!s.is_open(secs(utc(2026, 3, 8, 7, 0), -1)));
        let state = s.state_at(utc(2026, 3, 8, 7, 0));
        assert!(state.open);
        assert_eq!(state.decided_by, DecidedBy::WeeklyHours { index: 0 });
        assert_eq!(s.next_change(utc(2026, 3, 8, 7, 0)), Some(utc(2026, 3, 8, 10, 0))); // 06:00 EDT
        // Override local date-times in the gap resolve the same way.
        let o = ScheduleConfig::new("o", "America/New_York")
            .with_override(ScheduleOverride::open("2026-03-08T02:30").until("2026-03-08T04:00"))
            .build()
            .unwrap();
        assert_eq!(o.next_change(utc(2026, 3, 7, 0, 0)), Some(utc(2026, 3, 8, 7, 0)));
        assert_eq!(o.next_change(utc(2026, 3, 8, 7, 0)), Some(utc(2026, 3, 8, 8, 0)));
    }

    #[test]
    fn where_midnight_repeats_the_repeated_hour_belongs_to_the_next_date() {
        // Havana, 2026-11-01: at 01:00 CDT (05:00Z) clocks go back to 00:00 CST, so Sunday's
        // 00:00–01:00 happens twice (04:00Z–05:00Z and 05:00Z–06:00Z). Both passes are Sunday.
        let s = ScheduleConfig::new("h", "America/Havana").hours("Mon-Sat", "08:00", "24:00").build().unwrap();
        assert!(s.is_open(utc(2026, 11, 1, 3, 30))); // Saturday 23:30 CDT
        assert!(!s.is_open(utc(2026, 11, 1, 4, 30))); // Sunday 00:30 CDT, first pass
        assert_eq!(s.next_change(utc(2026, 10, 31, 23, 0)), Some(utc(2026, 11, 1, 4, 0)));
        // A holiday on Saturday ends at Sunday's first midnight.
        let h = ScheduleConfig::new("h", "America/Havana")
            .hours("Mon-Sun", "00:00", "24:00")
            .with_override(ScheduleOverride::holiday("2026-10-31"))
            .build()
            .unwrap();
        assert!(!h.is_open(utc(2026, 11, 1, 3, 30)));
        assert!(h.is_open(utc(2026, 11, 1, 4, 30)));
        // A closed Saturday and an open Sunday at the same level do not overlap.
        let days = ScheduleConfig::new("h", "America/Havana")
            .with_override(ScheduleOverride::closed("2026-10-31"))
            .with_override(ScheduleOverride::open("2026-11-01"))
            .build()
            .unwrap();
        assert!(days.is_open(utc(2026, 11, 1, 4, 30)));
        assert!(!days.is_open(utc(2026, 11, 1, 3, 30)));
    }

    #[test]
    fn new_york_fall_back_makes_one_to_two_last_two_hours() {
        // 2026-11-01: 02:00 EDT (06:00Z) falls back to 01:00 EST; 01:00–02:00 happens twice.
        let s = sunday("America/New_York", "01:00", "02:00");
        assert_eq!(s.next_change(utc(2026, 10, 31, 12, 0)), Some(utc(2026, 11, 1, 5, 0))); // 01:00 EDT
        assert!(s.is_open(utc(2026, 11, 1, 6, 30))); // 01:30 EST, second pass
        assert_eq!(s.next_change(utc(2026, 11, 1, 5, 0)), Some(utc(2026, 11, 1, 7, 0))); // 02:00 EST
        assert_eq!(
            s.open_duration_between(utc(2026, 10, 31, 0, 0), utc(2026, 11, 2, 0, 0)).unwrap(),
            Duration::hours(2)
        );
        // A one-hour SLA started at 01:00 EDT is due at 02:00 EDT, in the first pass.
        assert_eq!(
            s.add_business_time(utc(2026, 11, 1, 5, 0), Duration::hours(1)).unwrap(),
            Some(utc(2026, 11, 1, 6, 0))
        );
    }

    #[test]
    fn office_hours_keep_their_local_times_across_the_change() {
        let s = ScheduleConfig::new("ny", "America/New_York").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
        assert!(s.is_open(utc(2026, 3, 6, 14, 0))); // Friday 09:00 EST
        assert!(s.is_open(utc(2026, 3, 9, 13, 0))); // Monday 09:00 EDT
        assert!(!s.is_open(utc(2026, 3, 9, 21, 0))); // Monday 17:00 EDT
        assert_eq!(
            s.open_duration_between(utc(2026, 3, 6, 14, 0), utc(2026, 3, 9, 21, 0)).unwrap(),
            Duration::hours(16)
        );
        assert_eq!(
            s.add_business_time(utc(2026, 3, 6, 20, 0), Duration::hours(3)).unwrap(),
            Some(utc(2026, 3, 9, 14, 0))
        );

        // A holiday on the spring-forward Sunday is a 23-hour local day.
        let berlin = ScheduleConfig::new("b", "Europe/Berlin")
            .hours("Mon-Sun", "00:00", "24:00")
            .with_override(ScheduleOverride::holiday("2026-03-29"))
            .build()
            .unwrap();
        assert_eq!(berlin.next_change(utc(2026, 3, 28, 12, 0)), Some(utc(2026, 3, 28, 23, 0)));
        assert_eq!(berlin.next_change(utc(2026, 3, 28, 23, 0)), Some(utc(2026, 3, 29, 22, 0)));
    }

    #[test]
    fn the_documented_example_is_valid() {
        let s = Schedule::from_json(
            r#"{
              "name": "support",
              "time_zone": "Europe/Berlin",
              "weekly": [
                { "days": ["Mon-Fri"], "start": "08:00", "end": "18:00" },
                { "days": ["Fri"], "start": "22:00", "end": "06:00" }
              ],
              "overrides": [
                { "name": "Christmas", "from": "2026-12-24", "to": "2026-12-26", "state": "closed", "level": "holiday" },
                { "name": "Sale weekend", "from": "2026-11-28T10:00", "to": "2026-11-28T16:00", "state": "open" },
                { "name": "Outage line", "from": "2026-12-25T08:00:00Z", "to": "2026-12-25T12:00:00Z",
                  "state": "open", "level": "emergency" }
              ]
            }"#,
        )
        .unwrap();
        assert!(s.is_open(utc(2026, 11, 28, 9, 0))); // Saturday 10:00 CET, sale
        assert!(s.is_open(utc(2026, 11, 28, 1, 0))); // Saturday 02:00 CET, Friday night shift
        assert!(!s.is_open(utc(2026, 12, 24, 10, 0)));
        assert!(s.is_open(utc(2026, 12, 25, 10, 0)));
    }

    #[test]
    fn follow_the_sun_across_iana_zones() {
        let regions = [
            ScheduleConfig::new("sydney", "Australia/Sydney").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
            ScheduleConfig::new("berlin", "Europe/Berlin").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
            ScheduleConfig::new("new-york", "America/New_York").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
        ];
        // Monday 2026-03-30 07:30Z: Sydney 18:30 AEDT (closed), Berlin 09:30 CEST (open).
        let t = utc(2026, 3, 30, 7, 30);
        let open: Vec<&str> = open_schedules(&regions, t).iter().map(|s| s.name()).collect();
        assert_eq!(open, ["berlin"]);
        let next = next_to_open(&regions, t).unwrap();
        assert_eq!((next.schedule.name(), next.at), ("new-york", utc(2026, 3, 30, 13, 0)));
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn text_from(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(choices).prop_map(str::to_owned)
}

fn day_text() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => text_from(&["Mon", "tue", "WEDNESDAY", "Thu-Sat", "Fri-Mon", "Sun", "mon, wed", "sunday-monday", "Mon-Sun"]),
        1 => text_from(&["", "-", "Mon-", "x-y", "Funday", ",", "mo"]),
        1 => ".{0,10}",
    ]
}

fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => "(0[0-9]|1[0-9]|2[0-3]):(00|15|30|45)",
        30 => text_from(&["00:00", "24:00", "23:59:59", "02:30", "01:00", "02:00", "03:00", "12:00", "00:30"]),
        1 => text_from(&["9am", "", "24:01", "-1:00", "1:2", "99:99", " 09:00 ", "25:00"]),
        1 => ".{0,8}",
    ]
}

fn garbage_point() -> impl Strategy<Value = String> {
    prop_oneof![
        text_from(&[
            "9999-12-31",
            "0001-01-01",
            "+262143-12-31",
            "-262143-01-01",
            "2026-02-30",
            "2026-03-29T02:60",
            ""
        ]),
        ".{0,20}",
    ]
}

fn zone_text() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => text_from(&[
            "UTC", "Etc/UTC", "+02:00", "-05:30", "UTC+01:00", "+18:00", "-18:00", "Europe/Berlin",
            "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "America/Sao_Paulo", "Asia/Kathmandu",
            "Pacific/Kiritimati", "America/Havana", "Australia/Sydney", "America/Juneau", "Asia/Manila",
        ]),
        1 => text_from(&["+18:01", "Mars/Olympus", "utc", "", "+", "UTC+", "Etc/GMT+5"]),
        1 => ".{0,20}",
    ]
}

fn weekly_entry() -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => (prop::collection::vec(day_text(), 1..3), time_text(), time_text()),
        1 => (prop::collection::vec(".{0,6}", 0..3), ".{0,6}", ".{0,6}"),
    ]
    .prop_map(|(days, start, end)| json!({ "days": days, "start": start, "end": end }))
}

/// Dates where something happens: DST changes in 2026 (Europe, US, Sydney), Samoa's skipped
/// 2011-12-30, Alaska repeating a day in 1867 and Manila skipping one in 1844, and an ordinary
/// day.
const HOT_DATES: [(i32, u32, u32); 9] = [
    (2026, 3, 8),
    (2026, 3, 29),
    (2026, 10, 25),
    (2026, 11, 1),
    (2011, 12, 29),
    (2026, 4, 5),
    (2026, 6, 15),
    (1867, 10, 18),
    (1844, 12, 30),
];

fn hot_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (prop::sample::select(&HOT_DATES[..]), -3 * 86_400i64..4 * 86_400)
        .prop_map(|((y, m, d), offset)| utc(y, m, d, 0, 0) + Duration::seconds(offset))
}

/// Formats an instant as an override point: 0 a date (in UTC terms), 1 a local date-time, 2 an
/// instant with `Z`, 3 an instant with an offset.
fn point(t: DateTime<Utc>, form: u8) -> String {
    match form {
        0 => t.format("%Y-%m-%d").to_string(),
        1 => t.format("%Y-%m-%dT%H:%M").to_string(),
        2 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        _ => t.with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap()).to_rfc3339(),
    }
}

fn override_entry() -> impl Strategy<Value = Value> {
    let structured = (
        prop::option::of("[A-Za-z ]{1,12}"),
        hot_instant(),
        1i64..(4 * 24 * 4),
        0u8..4,
        0u8..4,
        prop::bool::ANY,
        prop::option::of(text_from(&["open", "closed", "holiday", "emergency"])),
    )
        .prop_map(|(name, from, quarters, from_form, to_form, open, level)| {
            let to = from + Duration::minutes(15 * quarters);
            let mut o = json!({ "from": point(from, from_form), "to": point(to, to_form), "state": if open { "open" } else { "closed" } });
            if let Some(name) = name {
                o["name"] = json!(name);
            }
            if let Some(level) = level {
                o["level"] = json!(level);
            }
            o
        });
    let rough = (garbage_point(), prop::option::of(garbage_point()), text_from(&["open", "closed", "closd"])).prop_map(
        |(from, to, state)| match to {
            Some(to) => json!({ "from": from, "to": to, "state": state }),
            None => json!({ "from": from, "state": state }),
        },
    );
    prop_oneof![30 => structured, 1 => rough]
}

fn schedule_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof![40 => "[a-z]{1,10}", 1 => ".{0,4}"],
        zone_text(),
        prop::collection::vec(weekly_entry(), 0..5),
        prop::collection::vec(override_entry(), 0..4),
    )
        .prop_map(|(name, zone, weekly, overrides)| {
            json!({ "name": name, "time_zone": zone, "weekly": weekly, "overrides": overrides })
        })
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        text_from(&["name", "time_zone", "weekly", "overrides", "days", "start", "end", "UTC", "09:00"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                text_from(&[
                    "name",
                    "time_zone",
                    "weekly",
                    "overrides",
                    "days",
                    "start",
                    "end",
                    "from",
                    "to",
                    "state",
                    "level",
                    "x"
                ]),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Instants near DST changes, in recent years, and in a wider range of years.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        3 => hot_instant(),
        2 => (1_262_304_000i64..1_893_456_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        1 => (-2_208_988_800i64..7_258_118_400).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
    ]
}

fn extremes() -> [DateTime<Utc>; 4] {
    [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::<Utc>::MIN_UTC + Duration::days(1),
        DateTime::<Utc>::MAX_UTC - Duration::days(1),
    ]
}

/// Queries at the edges of chrono's range must not panic (results are not checked there).
fn poke_extremes(s: &Schedule) {
    for t in extremes() {
        let _ = s.is_open(t);
        let _ = s.state_at(t);
        let _ = s.next_change(t);
        let _ = s.add_business_time(t, Duration::hours(1));
        let _ = s.open_duration_between(t, t);
        let _ = s.next_change_within(t, Duration::days(3));
    }
    let _ = s.open_duration_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let _ = s.add_business_time(DateTime::<Utc>::MIN_UTC, Duration::MAX);
}

/// What every valid schedule promises, checked at `t`.
fn check_laws(s: &Schedule, t: DateTime<Utc>) -> Result<(), TestCaseError> {
    let open = s.is_open(t);
    prop_assert_eq!(s.state_at(t).open, open);
    if let Some(change) = s.next_change(t) {
        prop_assert!(change > t);
        // `state_at` evaluates the rules directly; `is_open` and `next_change` go through the
        // per-year cache where it applies: they must agree.
        prop_assert_ne!(s.state_at(change).open, open, "no change at {} (from {})", change, t);
        let middle = t + (change - t) / 2;
        prop_assert_eq!(s.state_at(middle).open, open, "changed before {} (at {}, from {})", change, middle, t);
        prop_assert_eq!(s.state_at(change - Duration::milliseconds(1)).open, open);
    }
    for amount in [Duration::minutes(1), Duration::minutes(90), Duration::days(1)] {
        if let Some(due) = s.add_business_time(t, amount).unwrap() {
            prop_assert!(due >= t);
            prop_assert_eq!(s.open_duration_between(t, due).unwrap(), amount, "from {} due {}", t, due);
            // The earliest such instant: a moment earlier is not enough.
            prop_assert!(s.open_duration_between(t, due - Duration::milliseconds(1)).unwrap() < amount);
        }
    }
    let week = t + Duration::days(7);
    let total = s.open_duration_between(t, week).unwrap();
    prop_assert!(total >= Duration::zero() && total <= Duration::days(7));
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_schedule_documents_never_panic(doc in schedule_json(), times in prop::collection::vec(instant(), 3)) {
        let text = doc.to_string();
        let parsed = Schedule::from_json(&text);
        // Serde and `from_json` agree.
        prop_assert_eq!(serde_json::from_value::<Schedule>(doc.clone()).is_ok(), parsed.is_ok());
        match parsed {
            Ok(schedule) => {
                // It serialises back to a document that builds the same schedule.
                let again: Schedule = serde_json::from_value(serde_json::to_value(&schedule).unwrap()).unwrap();
                prop_assert_eq!(&again, &schedule);
                for t in times {
                    check_laws(&schedule, t)?;
                }
                poke_extremes(&schedule);
            }
            Err(err) => prop_assert!(matches!(err, Error::InvalidInput { .. }), "{:?}", err),
        }
    }

    #[test]
    fn arbitrary_json_never_panics(doc in any_json()) {
        let text = doc.to_string();
        if let Err(err) = Schedule::from_json(&text) {
            prop_assert!(matches!(err, Error::InvalidInput { .. }), "{:?}", err);
        }
        let _ = serde_json::from_str::<Calendars>(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let is_object = text.contains('{');
        prop_assert!(Schedule::from_json(&text).is_err() || is_object, "{:?} parsed", text);
    }
}

// ---------------------------------------------------------------------------------------------
// Leap seconds, and which rule an explanation names.
// ---------------------------------------------------------------------------------------------

mod leap_seconds_and_explanations {
    use super::*;
    use chrono::NaiveDate;

    /// A wall-clock instant with a leap second (`23:59:60.5`), as chrono represents it
    /// (`nanos` ≥ 1 s) and as RFC 3339 parsing of `…T23:59:60.5Z` produces it.
    fn leap_second(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap().and_utc()
    }

    #[test]
    fn a_leap_second_at_new_year_is_inside_a_round_the_clock_schedule() {
        let always = ScheduleConfig::new("s", "UTC").hours("Mon-Sun", "00:00", "24:00").build().unwrap();
        let leap = leap_second(2016, 12, 31);
        assert_eq!(leap, "2016-12-31T23:59:60.5Z".parse::<DateTime<Utc>>().unwrap());
        // The rules say open; `is_open` (what `schedule("s").open` reads) must agree.
        assert!(always.state_at(leap).open);
        assert!(always.is_open(leap), "24/7 schedule reported closed during the 2016-12-31 leap second");
        // A schedule that is always open never changes.
        assert_eq!(always.next_change(leap), None);
    }

    #[test]
    fn a_leap_second_belongs_to_the_day_it_ends() {
        // 2015-06-30 is a Tuesday; 23:59:60 is still Tuesday on every clock.
        let tuesday = ScheduleConfig::new("s", "UTC").hours("Tue", "00:00", "24:00").build().unwrap();
        let leap = leap_second(2015, 6, 30);
        assert_eq!(tuesday.is_open(leap), tuesday.state_at(leap).open, "is_open and state_at disagree at {leap:?}");
        assert!(tuesday.is_open(leap));
    }

    #[test]
    fn state_at_names_the_first_matching_weekly_entry() {
        // Both entries cover Tuesday 01:00; the docs promise the first matching one (weekly[0]).
        let s = ScheduleConfig::new("s", "UTC")
            .hours("Tue", "00:00", "08:00")
            .hours("Mon", "22:00", "06:00")
            .build()
            .unwrap();
        let tuesday_1am = utc(2026, 3, 3, 1, 0);
        assert_eq!(s.state_at(tuesday_1am).decided_by, DecidedBy::WeeklyHours { index: 0 });
    }
}

// ---------------------------------------------------------------------------------------------
// Agents on shifts (`Agent::schedule`): the router's clock is the `now` each call is given.
// ---------------------------------------------------------------------------------------------

mod shifts {
    use super::routing_common::*;
    use super::*;
    use touchpoint::model::ChannelKind;
    use touchpoint::routing::*;

    fn ms(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
        t + Duration::milliseconds(ms)
    }

    /// `name`: Mon–Fri `start`–`end` UTC.
    fn hours(name: &str, start: &str, end: &str) -> Schedule {
        ScheduleConfig::new(name, "UTC").hours("Mon-Fri", start, end).build().unwrap()
    }

    fn calendars(schedules: impl IntoIterator<Item = Schedule>) -> Calendars {
        Calendars::from_schedules(schedules).unwrap()
    }

    /// A router with queue `s` and the given schedules.
    fn shift_router(schedules: impl IntoIterator<Item = Schedule>) -> Router {
        let r = router(&["s"]);
        r.set_calendars(calendars(schedules));
        r
    }

    fn shift(agent: &str, schedule: &str, on_shift: bool) -> RoutingEvent {
        RoutingEvent::ShiftChanged { agent: aid(agent), schedule: schedule.into(), on_shift }
    }

    fn shift_events(events: &[RoutingEvent]) -> Vec<&RoutingEvent> {
        events.iter().filter(|e| matches!(e, RoutingEvent::ShiftChanged { .. })).collect()
    }

    fn groups(r: &Router, item: u128, now: DateTime<Utc>) -> Vec<(Exclusion, Vec<String>)> {
        let why = r.explain(wid(item), now).unwrap();
        why.groups.into_iter().map(|g| (g.reason, g.agents.iter().map(|a| a.to_string()).collect())).collect()
    }

    // Monday 2026-03-02.
    fn monday(h: u32, mi: u32) -> DateTime<Utc> {
        utc(2026, 3, 2, h, mi)
    }

    #[test]
    fn an_agent_gets_nothing_before_the_shift_and_the_waiting_item_at_nine_exactly() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        let events = r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office"), monday(8, 0)).unwrap();
        assert!(shift_events(&events).is_empty(), "a new agent's shift state is no event: {events:?}");
        // The shift start is the router's next timer.
        assert_eq!(r.next_timer(), Some(monday(9, 0)));

        let d = r.submit(chat(1, "s", monday(8, 30)), monday(8, 30)).unwrap();
        assert_eq!(d.outcome, Outcome::Queued(qid("s")));
        assert!(d.reason.to_string().ends_with("1 eligible by profile (0 signed in, 1 off shift)"), "{}", d.reason);
        assert!(r.tick(monday(8, 59)).is_empty());
        // Why: ana is off shift (by schedule), not away.
        let why = r.explain(wid(1), monday(8, 59)).unwrap();
        assert_eq!(why.groups.len(), 1);
        assert_eq!(why.groups[0].reason, Exclusion::OffShift { schedule: "office".into() });
        assert_eq!(why.groups[0].agents, [aid("ana")]);
        assert!(why.reason.contains("off shift"), "{}", why.reason);
        assert!(r.tick(ms(monday(9, 0), -1)).is_empty());

        let events = r.tick(monday(9, 0));
        assert_eq!(events[0], shift("ana", "office", true));
        assert_eq!(assignments(&events), [(wid(1), "ana".to_string())]);
        let wait = events.iter().find_map(|e| match e {
            RoutingEvent::Assigned { wait, .. } => Some(*wait),
            _ => None,
        });
        assert_eq!(wait, Some(Duration::minutes(30)));
        // The status itself never changed.
        assert_eq!(r.agent(&aid("ana")).unwrap().status, "online");
        assert_eq!(r.next_timer(), Some(monday(17, 0)));
    }

    #[test]
    fn after_the_shift_ends_held_work_stays_and_nothing_new_comes() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        r.upsert_agent(chat_agent("ana", "s", 2).with_schedule("office"), monday(16, 0)).unwrap();
        let d = r.submit(chat(1, "s", monday(16, 0)), monday(16, 0)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some("ana"));

        let events = r.tick(monday(17, 0));
        assert_eq!(events, [shift("ana", "office", false)]);
        assert_eq!(r.agent(&aid("ana")).unwrap().assigned, [wid(1)]);

        // Spare capacity, online, but off shift: a new chat waits, and so does one freed up.
        let d = r.submit(chat(2, "s", monday(17, 5)), monday(17, 5)).unwrap();
        assert_eq!(d.outcome, Outcome::Queued(qid("s")));
        let events = r.complete(wid(1), monday(17, 10)).unwrap();
        assert!(assignments(&events).is_empty(), "{events:?}");
        // A presence change while off shift gives nothing either.
        let events = r.set_presence(&aid("ana"), "online", monday(17, 20)).unwrap();
        assert!(assignments(&events).is_empty(), "{events:?}");

        // Tuesday 09:00 the chat is hers.
        let events = r.tick(utc(2026, 3, 3, 9, 0));
        assert_eq!(assignments(&events), [(wid(2), "ana".to_string())]);
    }

    #[test]
    fn follow_the_sun_hands_waiting_work_over_at_the_boundary() {
        // EMEA 08–16 UTC, AMER 16–24 UTC.
        let r = shift_router([hours("emea", "08:00", "16:00"), hours("amer", "16:00", "24:00")]);
        r.upsert_agent(chat_agent("emea-ana", "s", 1).with_schedule("emea"), monday(7, 0)).unwrap();
        r.upsert_agent(chat_agent("amer-bo", "s", 1).with_schedule("amer"), monday(7, 0)).unwrap();

        // Before either shift, nothing; at 08:00 EMEA takes the waiting chat.
        assert_eq!(r.submit(chat(1, "s", monday(7, 30)), monday(7, 30)).unwrap().outcome, Outcome::Queued(qid("s")));
        let events = r.tick(monday(8, 0));
        assert_eq!(shift_events(&events), [&shift("emea-ana", "emea", true)]);
        assert_eq!(assignments(&events), [(wid(1), "emea-ana".to_string())]);

        // A chat one second before the boundary waits (EMEA is full, AMER not yet on).
        let before = secs(monday(16, 0), -1);
        assert_eq!(r.submit(chat(2, "s", before), before).unwrap().outcome, Outcome::Queued(qid("s")));
        let events = r.tick(monday(16, 0));
        let mut changes = shift_events(&events);
        changes.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(changes, [&shift("amer-bo", "amer", true), &shift("emea-ana", "emea", false)]);
        assert_eq!(assignments(&events), [(wid(2), "amer-bo".to_string())]);

        // EMEA frees up after its shift: the next chat still waits for AMER.
        r.complete(wid(1), monday(16, 5)).unwrap();
        assert_eq!(r.submit(chat(3, "s", monday(16, 6)), monday(16, 6)).unwrap().outcome, Outcome::Queued(qid("s")));
        let events = r.complete(wid(2), monday(16, 30)).unwrap();
        assert_eq!(assignments(&events), [(wid(3), "amer-bo".to_string())]);
        // AMER ends at midnight; Tuesday 08:00 EMEA is back.
        assert_eq!(r.tick(utc(2026, 3, 3, 0, 0)), [shift("amer-bo", "amer", false)]);
        assert_eq!(r.next_timer(), Some(utc(2026, 3, 3, 8, 0)));
    }

    #[test]
    fn the_item_goes_to_whoever_is_on_shift_at_submission() {
        let r = shift_router([hours("emea", "08:00", "16:00"), hours("amer", "16:00", "24:00")]);
        r.upsert_agent(chat_agent("emea-ana", "s", 5).with_schedule("emea"), monday(7, 0)).unwrap();
        r.upsert_agent(chat_agent("amer-bo", "s", 5).with_schedule("amer"), monday(7, 0)).unwrap();
        // No tick in between: each call fires the shift timers due by its `now` first.
        let before = secs(monday(16, 0), -1);
        assert_eq!(assigned_to(&r.submit(chat(1, "s", before), before).unwrap()).as_deref(), Some("emea-ana"));
        let d = r.submit(chat(2, "s", monday(16, 0)), monday(16, 0)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some("amer-bo"));
        assert_eq!(shift_events(&d.events).len(), 2, "{:?}", d.events);
    }

    #[test]
    fn a_late_tick_applies_the_shift_as_of_now_without_drift() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office"), monday(8, 0)).unwrap();
        r.submit(chat(1, "s", monday(8, 30)), monday(8, 30)).unwrap();
        // The host's timer loop is 90 minutes late.
        let events = r.tick(monday(10, 30));
        assert_eq!(events[0], shift("ana", "office", true));
        assert_eq!(assignments(&events), [(wid(1), "ana".to_string())]);
        assert_eq!(r.next_timer(), Some(monday(17, 0)), "the next change is the schedule's, not 17:00 + 90 min");

        // A tick a day late crosses a close and an open: no change is left to report.
        r.complete(wid(1), monday(11, 0)).unwrap();
        assert!(r.tick(utc(2026, 3, 3, 12, 0)).is_empty());
        assert_eq!(r.next_timer(), Some(utc(2026, 3, 3, 17, 0)));
        // Late over a close only: off shift as of the tick.
        assert_eq!(r.tick(utc(2026, 3, 3, 20, 0)), [shift("ana", "office", false)]);
        assert_eq!(r.next_timer(), Some(utc(2026, 3, 4, 9, 0)));
    }

    #[test]
    fn set_calendars_checks_every_agent_at_the_next_call() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office"), monday(7, 0)).unwrap();
        r.upsert_agent(chat_agent("free", "t", 1), monday(7, 0)).unwrap_err(); // unknown queue t
        r.submit(chat(1, "s", monday(7, 30)), monday(7, 30)).unwrap();

        // Earlier hours: the check is due at once and the next call applies it.
        r.set_calendars(calendars([hours("office", "08:00", "16:00")]));
        assert!(r.next_timer().is_some_and(|t| t <= monday(8, 10)));
        let events = r.tick(monday(8, 10));
        assert_eq!(events[0], shift("ana", "office", true));
        assert_eq!(assignments(&events), [(wid(1), "ana".to_string())]);
        // The timer set for 09:00 under the old hours is stale: due, it does nothing.
        assert_eq!(r.next_timer(), Some(monday(9, 0)));
        assert!(r.tick(monday(9, 0)).is_empty());
        assert_eq!(r.next_timer(), Some(monday(16, 0)));

        // The same hours again change nothing.
        r.set_calendars(calendars([hours("office", "08:00", "16:00")]));
        assert!(r.tick(monday(9, 15)).is_empty());
        assert_eq!(r.next_timer(), Some(monday(16, 0)));

        // The schedule removed: closed, and said so.
        r.set_calendars(Calendars::new());
        r.submit(chat(2, "s", monday(9, 20)), monday(9, 20)).unwrap();
        let why = groups(&r, 2, monday(9, 20));
        assert!(why.contains(&(Exclusion::OffShift { schedule: "office".into() }, vec!["ana".into()])), "{why:?}");
        assert!(r.tick(monday(16, 0)).is_empty(), "the 16:00 timer is stale");
        assert_eq!(r.next_timer(), None);

        // Back, longer (any call fires the check first, here a completion that frees ana anyway).
        r.set_calendars(calendars([hours("office", "08:00", "18:00")]));
        let events = r.complete(wid(1), monday(16, 30)).unwrap();
        assert_eq!(shift_events(&events), [&shift("ana", "office", true)]);
        assert_eq!(assignments(&events), [(wid(2), "ana".to_string())]);
    }

    #[test]
    fn an_unknown_schedule_is_refused_and_changes_nothing() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        let err = r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("night"), monday(10, 0)).unwrap_err();
        assert!(matches!(&err, Error::NotFound { entity: "schedule", id } if id.contains("night")), "{err:?}");
        assert!(r.agent(&aid("ana")).is_none());

        // A known agent stays as it was.
        r.upsert_agent(chat_agent("ana", "s", 1), monday(10, 0)).unwrap();
        assert!(r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("night"), monday(10, 0)).is_err());
        let d = r.submit(chat(1, "s", monday(10, 1)), monday(10, 1)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some("ana"));

        // Names are 1 to 128 characters.
        for bad in [String::new(), "x".repeat(129)] {
            let err = r.upsert_agent(chat_agent("bo", "s", 1).with_schedule(bad), monday(10, 0)).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "agent.schedule", .. }), "{err:?}");
        }
        // No calendars at all: refused as well.
        let bare = router(&["s"]);
        assert!(bare.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office"), monday(10, 0)).is_err());
    }

    #[test]
    fn an_update_that_moves_an_agent_to_another_schedule_is_a_shift_change() {
        let r = shift_router([hours("early", "06:00", "14:00"), hours("late", "14:00", "22:00")]);
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("early"), monday(15, 0)).unwrap();
        r.submit(chat(1, "s", monday(15, 0)), monday(15, 0)).unwrap();
        let events = r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("late"), monday(15, 5)).unwrap();
        assert_eq!(events[0], shift("ana", "late", true));
        assert_eq!(assignments(&events), [(wid(1), "ana".to_string())]);
        assert_eq!(r.next_timer(), Some(monday(22, 0)));
        // Without a schedule the agent works whenever present: the 22:00 timer is stale.
        let events = r.upsert_agent(chat_agent("ana", "s", 1), monday(15, 10)).unwrap();
        assert!(shift_events(&events).is_empty());
        assert!(r.tick(monday(22, 0)).is_empty());
    }

    #[test]
    fn off_shift_agents_are_not_available_nor_signed_in_and_explain_says_so() {
        let r = Router::new(RouterConfig::default());
        for q in ["emea", "amer"] {
            r.upsert_queue(Queue::new(qid(q))).unwrap();
        }
        r.set_calendars(calendars([hours("emea", "08:00", "16:00"), hours("amer", "16:00", "24:00")]));
        r.upsert_agent(chat_agent("ana", "emea", 1).with_schedule("emea"), monday(17, 0)).unwrap();
        r.upsert_agent(chat_agent("bo", "amer", 1).with_schedule("amer"), monday(17, 0)).unwrap();
        // Bo is busy; EMEA steps are skipped while nobody there is signed in (ana is off shift).
        r.submit(chat(1, "amer", monday(17, 0)), monday(17, 0)).unwrap();
        let steps = [
            Step::new(Pool::queues([qid("emea")])).skip_if(SkipIf::NoAgentsSignedIn).dwell(Duration::minutes(5)),
            Step::new(Pool::queues([qid("amer")])),
        ];
        r.set_plan(Plan::new([Rule::new("sun", steps)]), monday(17, 0)).unwrap();
        let d = r.submit(WorkItem::new(wid(2), ChannelKind::WebChat, monday(17, 1)), monday(17, 1)).unwrap();
        assert!(d.events.iter().any(|e| matches!(e, RoutingEvent::StepSkipped { step: 0, .. })), "{:?}", d.events);
        assert_eq!(d.step, Some(1));

        // pool.available / pool.signed_in count no one off shift.
        let probe = Step::new(Pool::queues([qid("emea")]))
            .skip_if(SkipIf::expr("pool.signed_in == 0 and pool.available == 0"))
            .dwell(Duration::minutes(5));
        r.set_plan(Plan::new([Rule::new("probe", [probe, Step::new(Pool::queues([qid("amer")]))])]), monday(17, 2))
            .unwrap();
        let d = r.submit(WorkItem::new(wid(3), ChannelKind::WebChat, monday(17, 3)), monday(17, 3)).unwrap();
        assert_eq!(d.step, Some(1), "{:?}", d.events);

        // Explanations: the off-shift agent by schedule, in the groups and in the reason.
        let mut r2 = groups(&r, 2, monday(17, 3));
        r2.sort_by_key(|g| format!("{g:?}"));
        assert!(r2.contains(&(Exclusion::NoCapacity { channel: ChannelKind::WebChat }, vec!["bo".into()])), "{r2:?}");
        let r1 = groups(&r, 1, monday(17, 3));
        assert!(r1.contains(&(Exclusion::NotInPool, vec!["ana".into()])), "{r1:?}");
        let off = Exclusion::OffShift { schedule: "emea".into() };
        assert_eq!(serde_json::to_value(&off).unwrap(), json!({"kind": "off_shift", "schedule": "emea"}));
    }

    #[test]
    fn presence_and_shift_combine() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office").with_status("away"), monday(8, 0)).unwrap();
        r.submit(chat(1, "s", monday(8, 0)), monday(8, 0)).unwrap();
        // Away when the shift starts: still nothing, and the explanation names the status.
        let events = r.tick(monday(9, 0));
        assert_eq!(events, [shift("ana", "office", true)]);
        assert!(
            groups(&r, 1, monday(9, 0)).contains(&(Exclusion::Presence { status: "away".into() }, vec!["ana".into()]))
        );
        // Online: the chat at once.
        let events = r.set_presence(&aid("ana"), "online", monday(9, 5)).unwrap();
        assert_eq!(assignments(&events), [(wid(1), "ana".to_string())]);
        // Going offline after the shift still applies the offline policy.
        let r = Router::new(RouterConfig {
            offline: OfflinePolicy { grace: Duration::zero(), assigned: OfflineAction::Requeue },
            ..RouterConfig::default()
        });
        r.upsert_queue(Queue::new(qid("s"))).unwrap();
        r.set_calendars(calendars([hours("office", "09:00", "17:00")]));
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office"), monday(16, 0)).unwrap();
        r.submit(chat(1, "s", monday(16, 0)), monday(16, 0)).unwrap();
        assert_eq!(r.tick(monday(17, 0)), [shift("ana", "office", false)]);
        let events = r.set_presence(&aid("ana"), "offline", monday(17, 30)).unwrap();
        assert!(
            events.iter().any(|e| matches!(e, RoutingEvent::Requeued { reason: RequeueReason::AgentOffline, .. })),
            "{events:?}"
        );
    }

    #[test]
    fn offers_follow_shifts_too() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, Duration::seconds(30)))).unwrap();
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office"), monday(8, 0)).unwrap();
        assert_eq!(r.submit(chat(1, "s", monday(8, 0)), monday(8, 0)).unwrap().outcome, Outcome::Queued(qid("s")));
        let events = r.tick(monday(9, 0));
        assert!(
            events.iter().any(|e| matches!(e, RoutingEvent::Offered { agents, .. } if agents == &[aid("ana")])),
            "{events:?}"
        );
    }

    #[test]
    fn the_schedule_field_is_optional_in_json_and_toml_and_the_event_serialises() {
        let old: Agent = serde_json::from_value(json!({"id": "ana", "presence": {"status": "online"}})).unwrap();
        assert_eq!(old.schedule, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("schedule"));
        let new: Agent = serde_json::from_value(json!({"id": "ana", "schedule": "emea"})).unwrap();
        assert_eq!(new, Agent::new(aid("ana")).with_schedule("emea"));
        let back: Agent = toml::from_str(&toml::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
        let old_toml: Agent = toml::from_str("id = \"ana\"\n").unwrap();
        assert_eq!(old_toml.schedule, None);
        assert_eq!(
            serde_json::to_value(shift("ana", "emea", true)).unwrap(),
            json!({"event": "shift_changed", "agent": "ana", "schedule": "emea", "on_shift": true})
        );
    }

    #[cfg(feature = "tz")]
    #[test]
    fn a_berlin_shift_starts_at_nine_local_across_the_daylight_saving_change() {
        let berlin = ScheduleConfig::new("berlin", "Europe/Berlin").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
        let r = shift_router([berlin]);
        // Friday 2026-03-27, CET (+01:00): 09:00–17:00 local is 08:00–16:00Z.
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("berlin"), utc(2026, 3, 27, 7, 0)).unwrap();
        assert_eq!(r.next_timer(), Some(utc(2026, 3, 27, 8, 0)));
        assert_eq!(r.tick(utc(2026, 3, 27, 8, 0)), [shift("ana", "berlin", true)]);
        assert_eq!(r.tick(utc(2026, 3, 27, 16, 0)), [shift("ana", "berlin", false)]);
        // Clocks go forward on Sunday the 29th: Monday 09:00 CEST is 07:00Z.
        assert_eq!(r.next_timer(), Some(utc(2026, 3, 30, 7, 0)));
        r.submit(chat(1, "s", utc(2026, 3, 30, 6, 0)), utc(2026, 3, 30, 6, 0)).unwrap();
        assert!(r.tick(ms(utc(2026, 3, 30, 7, 0), -1)).is_empty());
        let events = r.tick(utc(2026, 3, 30, 7, 0));
        assert_eq!(events[0], shift("ana", "berlin", true));
        assert_eq!(assignments(&events), [(wid(1), "ana".to_string())]);
        assert_eq!(r.next_timer(), Some(utc(2026, 3, 30, 15, 0)));
    }

    /// Off shift an agent takes no new work: an offer still open when the shift ends is
    /// withdrawn (as when the agent goes offline), so it cannot be accepted after the end.
    #[test]
    fn an_offer_open_at_the_shift_end_cannot_be_accepted_off_shift() {
        let r = shift_router([hours("office", "09:00", "17:00")]);
        r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, Duration::seconds(60)))).unwrap();
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("office"), monday(16, 0)).unwrap();
        let offered_at = secs(monday(17, 0), -10);
        let d = r.submit(chat(1, "s", offered_at), offered_at).unwrap();
        assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]));
        let events = r.tick(monday(17, 0));
        assert_eq!(shift_events(&events), [&shift("ana", "office", false)]);
        let accepted = r.accept(wid(1), &aid("ana"), secs(monday(17, 0), 20));
        assert!(accepted.is_err(), "ana off shift accepted new work: {accepted:?}; {:?}", r.agent(&aid("ana")));
    }

    /// An update that ends the agent's shift (a move to a schedule closed now) withdraws their
    /// open offer as the shift-end timer does: an off-shift agent accepts no new work.
    #[test]
    fn an_update_that_ends_the_shift_withdraws_open_offers() {
        let r = shift_router([hours("early", "06:00", "14:00"), hours("late", "14:00", "22:00")]);
        r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, Duration::seconds(60)))).unwrap();
        r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("early"), monday(10, 0)).unwrap();
        let d = r.submit(chat(1, "s", monday(10, 0)), monday(10, 0)).unwrap();
        assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]));
        let events = r.upsert_agent(chat_agent("ana", "s", 1).with_schedule("late"), monday(10, 0)).unwrap();
        assert_eq!(shift_events(&events), [&shift("ana", "late", false)]);
        let accepted = r.accept(wid(1), &aid("ana"), secs(monday(10, 0), 5));
        assert!(accepted.is_err(), "ana, off shift after the update, accepted new work: {accepted:?}");
        assert_eq!(r.agent(&aid("ana")).unwrap().load, 0, "the withdrawn offer no longer counts");
    }
}

// ---------------------------------------------------------------------------------------------
// Review findings
// ---------------------------------------------------------------------------------------------

#[test]
fn the_first_days_of_chronos_calendar_have_weekly_hours_and_next_change_sees_them() {
    let first = DateTime::<Utc>::MIN_UTC;
    // Evening hours: is_open opens within the first weeks, so next_change must not say "never".
    let s = ScheduleConfig::new("p", "UTC").hours("Mon-Sun", "20:00", "04:00").build().unwrap();
    let opens = (0..24 * 60).map(|h| first + Duration::hours(h)).find(|&t| s.is_open(t)).unwrap();
    let change = s.next_change(first);
    assert!(change.is_some_and(|c| c <= opens), "next_change({first}) = {change:?}, but open at {opens}");
    assert!(s.open_duration_between(first, first + Duration::days(60)).unwrap() > Duration::days(15));
    // Round the clock in UTC: chrono's first day is a local date in its calendar, so it is open.
    let s = ScheduleConfig::new("p", "UTC").hours("Mon-Sun", "00:00", "24:00").build().unwrap();
    assert!(s.is_open(first + Duration::hours(6)), "closed on chrono's first day");
}

#[test]
fn override_bounds_in_a_leap_second_agree_between_is_open_and_state_at() {
    let s = ScheduleConfig::new("l", "UTC")
        .with_override(ScheduleOverride::open("2016-12-31T23:59:60.5Z").until("2017-01-01T06:00:00Z"))
        .build()
        .unwrap();
    let in_leap =
        chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_milli_opt(23, 59, 59, 1_700).unwrap().and_utc();
    assert_eq!(s.is_open(in_leap), s.state_at(in_leap).open, "at {in_leap:?}");
    // The opening the rules see is inside the leap second, not half a second into 2017.
    let change = s.next_change(utc(2016, 12, 31, 23, 0)).unwrap();
    assert!(change < utc(2017, 1, 1, 0, 0), "next_change = {change:?}");
}
