//! Business-hours calendars: when is a queue, a team or a region open?
//!
//! A [`Schedule`] is a named set of weekly opening hours in one time zone plus dated
//! overrides (holidays, special openings, emergencies). Routing asks it whether it is open
//! ([`Schedule::is_open`]), why ([`Schedule::state_at`]), when that changes
//! ([`Schedule::next_change`]), and how much business time lies between two instants or when a
//! business-time budget runs out ([`Schedule::open_duration_between`],
//! [`Schedule::add_business_time`], for SLA due times). [`Calendars`] holds schedules by name,
//! which is what the expression language calls as `schedule("support").open`; the
//! follow-the-sun helpers ([`open_schedules`], [`next_to_open`]) pick among several regional
//! schedules.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use touchpoint::routing::calendar::{ScheduleConfig, ScheduleOverride};
//!
//! let support = ScheduleConfig::new("support", "+01:00")
//!     .hours("Mon-Fri", "09:00", "17:00")
//!     .hours("Sat", "10:00", "14:00")
//!     .with_override(ScheduleOverride::holiday("2026-12-25").named("Christmas Day"))
//!     .build()
//!     .unwrap();
//! // Monday 2026-03-02, 10:00 local (+01:00) is 09:00 UTC.
//! assert!(support.is_open(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
//! // Christmas Day 2026 is a Friday, but the holiday wins.
//! let xmas = Utc.with_ymd_and_hms(2026, 12, 25, 10, 0, 0).unwrap();
//! assert!(!support.is_open(xmas));
//! assert_eq!(support.state_at(xmas).to_string(), "closed by holiday override \"Christmas Day\" (overrides[0])");
//! ```
//!
//! # The serde form
//!
//! A schedule is plain data ([`ScheduleConfig`]) that reads the same in JSON and TOML.
//! Deserialising a [`Schedule`] validates it; [`Schedule::from_json`] and [`Schedule::new`]
//! report problems as [`Error::InvalidInput`] whose `field` names the offending field and whose
//! reason starts with its exact path (`weekly[1].end`, `overrides[3].from`, …).
//!
//! ```json
//! {
//!   "name": "support",
//!   "time_zone": "Europe/Berlin",
//!   "weekly": [
//!     { "days": ["Mon-Fri"], "start": "08:00", "end": "18:00" },
//!     { "days": ["Fri"], "start": "22:00", "end": "06:00" }
//!   ],
//!   "overrides": [
//!     { "name": "Christmas", "from": "2026-12-24", "to": "2026-12-26", "state": "closed", "level": "holiday" },
//!     { "name": "Sale weekend", "from": "2026-11-28T10:00", "to": "2026-11-28T16:00", "state": "open" },
//!     { "name": "Outage line", "from": "2026-12-25T08:00:00Z", "to": "2026-12-25T12:00:00Z",
//!       "state": "open", "level": "emergency" }
//!   ]
//! }
//! ```
//!
//! * `days`: day names (`Mon`/`Monday`, any case) or ranges (`Mon-Fri`, `Fri-Mon` wraps);
//!   an entry may list several, separated by commas.
//! * `start`/`end`: local wall-clock `HH:MM` or `HH:MM:SS`; `end` may be `24:00`. An `end` at or
//!   before `start` means the interval crosses midnight and ends on the next day (`22:00`–`06:00`).
//!   `start` equal to `end` is refused (write `00:00`–`24:00` for a whole day). Weekly intervals
//!   may overlap; they are all "open", so overlapping ones simply merge.
//! * override `from`/`to`: a date (`2026-12-24`, whole local days, `to` inclusive), a local
//!   date-time (`2026-12-24T09:00`, `to` exclusive) or an instant with an offset
//!   (`2026-12-24T08:00:00Z`). `to` may be left out when `from` is a date (that one day).
//! * `state`: `open` or `closed`. `level` (optional, defaults to the state): `open` <
//!   `closed` < `holiday` < `emergency`.
//!
//! # Which rule decides
//!
//! At any instant the override with the highest [`OverrideLevel`] that covers it decides
//! (Genesys' order Emergency > Holiday > Closed > Open); without one, the weekly hours decide
//! (open inside an interval); outside them the schedule is closed. Two overrides at the same
//! level whose ranges overlap and whose states differ contradict each other and are refused; to
//! open for the morning of a holiday, give the opening a higher level or make the holiday range
//! stop where the opening starts.
//!
//! # Time zones
//!
//! `time_zone` is `UTC`, a fixed offset (`+02:00`, `-05:30`, `UTC+02:00`; at most ±18:00) or,
//! with the `tz` cargo feature (chrono-tz, tzdata 2025b), any IANA name such as
//! `Europe/Berlin`. Without the feature an IANA name is refused with an error that says to enable
//! it — fixed offsets do not follow daylight saving time, so a silent fallback would be wrong half
//! of the year. chrono-tz's transition tables end with 2099: from 2100 on, a zone keeps the offset
//! it has at the end of 2099 all year (no daylight saving time).
//!
//! # Daylight saving time
//!
//! Hours follow the local wall clock. An interval runs from the *first* instant the clock shows
//! its start to the *last* instant it shows its end:
//!
//! * **Gap** (spring forward): a start or end that falls in the skipped hour takes effect at the
//!   first valid instant after the gap. In Berlin on 2026-03-29 clocks jump from 02:00 to 03:00,
//!   so an interval starting 02:30 opens at 03:00 CEST; an interval lying wholly inside the gap
//!   (02:00–02:30) does not open that day.
//! * **Overlap** (fall back): the interval follows the wall clock through the repeated hour
//!   instead of ending at its first pass. In New York on 2026-11-01 the clock shows 01:00–02:00
//!   twice, so an interval 01:00–02:00 that day lasts two hours of real time, and 00:00–01:30
//!   lasts two and a half, without a closed gap in the middle.
//!
//! An end at midnight (`24:00`, an interval crossing into the next day that ends at `00:00`, an
//! override's end date) is the exception: it ends at the *first* midnight, for where the clock
//! goes back to midnight (Havana on 2026-11-01, the Azores in October) the repeated hour shows
//! the next date. Override dates and local date-times follow the same rules (a date's day runs
//! from its first midnight to the first midnight of the next date). Instants with an offset are
//! taken as they are.
//!
//! # Limits
//!
//! At most [`MAX_WEEKLY_HOURS`] weekly entries and [`MAX_OVERRIDES`] overrides per schedule;
//! names are 1 to [`MAX_NAME_LEN`] characters. [`Schedule::next_change`] looks
//! [`NEXT_CHANGE_HORIZON_DAYS`] days ahead; spans given to
//! [`open_duration_between`](Schedule::open_duration_between) and the search of
//! [`add_business_time`](Schedule::add_business_time) are bounded by [`SEARCH_LIMIT_DAYS`].
//! Instants whose local date lies outside chrono's calendar (beyond ±262,000 years) have no
//! weekly hours.
//!
//! # Cost
//!
//! A schedule flattens each UTC calendar year (1970–2199) into sorted open intervals the first
//! time it is asked about an instant in it, so [`Schedule::is_open`] is a binary search
//! (measured at under 2× a lookup in a precomputed `Vec`, `benches/calendar.rs`). The cache is
//! derived data: clones carry it, comparisons and serialisation ignore it.

use crate::{Error, Result};
#[cfg(feature = "tz")]
use chrono::Offset;
use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

/// Most weekly entries a schedule may have.
pub const MAX_WEEKLY_HOURS: usize = 1_000;
/// Most overrides a schedule may have.
pub const MAX_OVERRIDES: usize = 10_000;
/// Longest schedule or override name, in characters.
pub const MAX_NAME_LEN: usize = 128;
/// How far ahead [`Schedule::next_change`] looks, in days.
pub const NEXT_CHANGE_HORIZON_DAYS: i64 = 366;
/// Longest span, in days, that business-time arithmetic walks (about ten years).
pub const SEARCH_LIMIT_DAYS: i64 = 3_660;

const DAY_SECS: u32 = 86_400;
/// Days of candidate boundaries gathered at a time while walking a schedule.
const WINDOW_DAYS: i64 = 31;
/// Weekly intervals starting this many local days before an instant's date may still contain it.
const REACH_BACK_DAYS: u64 = 3;
/// … and this many after (where midnight repeats).
const REACH_AHEAD_DAYS: u64 = 2;

// ---------------------------------------------------------------------------------------------
// The serde form
// ---------------------------------------------------------------------------------------------

/// A schedule as written: the serde form a [`Schedule`] is built from and serialises back to.
///
/// Every value is kept as the text the user wrote, so that [`Schedule::new`] can point at the
/// exact field that is wrong. See the [module docs](self) for the format.
///
/// ```
/// use touchpoint::routing::calendar::{ScheduleConfig, ScheduleOverride, OverrideState};
/// let config = ScheduleConfig::new("billing", "UTC")
///     .hours("Mon-Thu", "08:00", "16:00")
///     .hours("Fri", "08:00", "12:00")
///     .with_override(ScheduleOverride::new(OverrideState::Closed, "2026-05-01").named("Labour Day"));
/// let schedule = config.clone().build().unwrap();
/// assert_eq!(schedule.config(), &config);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The schedule's name, the key it is looked up by (`schedule("support")`).
    pub name: String,
    /// `UTC`, a fixed offset such as `+02:00`, or (with the `tz` feature) an IANA zone name.
    pub time_zone: String,
    /// Regular weekly opening hours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekly: Vec<WeeklyHours>,
    /// Dated exceptions: holidays, special openings, emergencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<ScheduleOverride>,
}

impl ScheduleConfig {
    /// A schedule with no hours yet (always closed until hours are added).
    pub fn new(name: impl Into<String>, time_zone: impl Into<String>) -> Self {
        ScheduleConfig { name: name.into(), time_zone: time_zone.into(), weekly: Vec::new(), overrides: Vec::new() }
    }

    /// Adds weekly opening hours: `days` as in [`WeeklyHours::days`] (`"Mon-Fri"`,
    /// `"Sat, Sun"`), `start` and `end` as local `HH:MM`. Checked by [`build`](Self::build).
    pub fn hours(mut self, days: &str, start: &str, end: &str) -> Self {
        self.weekly.push(WeeklyHours { days: vec![days.to_owned()], start: start.to_owned(), end: end.to_owned() });
        self
    }

    /// Adds an override.
    pub fn with_override(mut self, entry: ScheduleOverride) -> Self {
        self.overrides.push(entry);
        self
    }

    /// Validates the configuration into a [`Schedule`] (same as [`Schedule::new`]).
    pub fn build(self) -> Result<Schedule> {
        Schedule::new(self)
    }
}

/// Weekly opening hours: the same local interval on each of `days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    /// Day names (`Mon`, `monday`) or ranges (`Mon-Fri`; `Fri-Mon` wraps round the week); an
    /// entry may hold several separated by commas. The interval *starts* on each of these days.
    pub days: Vec<String>,
    /// Local opening time, `HH:MM` or `HH:MM:SS`.
    pub start: String,
    /// Local closing time, `HH:MM` or `HH:MM:SS`, or `24:00`; at or before `start` means the
    /// next day.
    pub end: String,
}

/// Whether an override opens or closes the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideState {
    /// Open during the override.
    Open,
    /// Closed during the override.
    Closed,
}

/// How strongly an override applies; when several cover the same instant the highest wins.
/// All of them beat the weekly hours.
///
/// ```
/// use touchpoint::routing::calendar::OverrideLevel;
/// assert!(OverrideLevel::Emergency > OverrideLevel::Holiday);
/// assert!(OverrideLevel::Holiday > OverrideLevel::Closed);
/// assert!(OverrideLevel::Closed > OverrideLevel::Open);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideLevel {
    /// Special opening hours (the default for `state: open`).
    Open,
    /// Ad-hoc closures such as a team meeting (the default for `state: closed`).
    Closed,
    /// Public holidays and other planned closures.
    Holiday,
    /// Emergencies: beat everything else.
    Emergency,
}

impl fmt::Display for OverrideLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OverrideLevel::Open => "open",
            OverrideLevel::Closed => "closed",
            OverrideLevel::Holiday => "holiday",
            OverrideLevel::Emergency => "emergency",
        })
    }
}

/// A dated exception to the weekly hours.
///
/// ```
/// use touchpoint::routing::calendar::{OverrideLevel, OverrideState, ScheduleOverride};
/// let storm = ScheduleOverride::emergency(OverrideState::Closed, "2026-02-03T12:00")
///     .until("2026-02-04T09:00")
///     .named("Storm");
/// assert_eq!(storm.effective_level(), OverrideLevel::Emergency);
/// assert_eq!(ScheduleOverride::open("2026-11-28").effective_level(), OverrideLevel::Open);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleOverride {
    /// A label for explanations ("Christmas").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it starts: a date, a local date-time or an instant with an offset.
    pub from: String,
    /// Where it ends: a date (inclusive), a local date-time or an instant (exclusive). May be left
    /// out when `from` is a date, meaning that one day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Open or closed while it applies.
    pub state: OverrideState,
    /// Its precedence; defaults to [`OverrideLevel::Open`] or [`OverrideLevel::Closed`] after
    /// `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<OverrideLevel>,
}

impl ScheduleOverride {
    /// An override in `state` starting at `from` (for a date: that one day).
    pub fn new(state: OverrideState, from: impl Into<String>) -> Self {
        ScheduleOverride { name: None, from: from.into(), to: None, state, level: None }
    }

    /// A special opening at level [`OverrideLevel::Open`].
    pub fn open(from: impl Into<String>) -> Self {
        Self::new(OverrideState::Open, from)
    }

    /// An ad-hoc closure at level [`OverrideLevel::Closed`].
    pub fn closed(from: impl Into<String>) -> Self {
        Self::new(OverrideState::Closed, from)
    }

    /// A closure at level [`OverrideLevel::Holiday`].
    pub fn holiday(from: impl Into<String>) -> Self {
        Self::new(OverrideState::Closed, from).at_level(OverrideLevel::Holiday)
    }

    /// An override at level [`OverrideLevel::Emergency`].
    pub fn emergency(state: OverrideState, from: impl Into<String>) -> Self {
        Self::new(state, from).at_level(OverrideLevel::Emergency)
    }

    /// Sets where it ends.
    pub fn until(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }

    /// Sets its label.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets its level.
    pub fn at_level(mut self, level: OverrideLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// The level it applies at: `level`, or the default for its `state`.
    pub fn effective_level(&self) -> OverrideLevel {
        self.level.unwrap_or(match self.state {
            OverrideState::Open => OverrideLevel::Open,
            OverrideState::Closed => OverrideLevel::Closed,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Explanations
// ---------------------------------------------------------------------------------------------

/// Whether a schedule is open at an instant, and which rule decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Open or closed.
    pub open: bool,
    /// The rule that decided.
    pub decided_by: DecidedBy,
}

impl fmt::Display for ScheduleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.open { "open" } else { "closed" };
        match &self.decided_by {
            DecidedBy::Override { index, name: Some(name), level } => {
                write!(f, "{state} by {level} override {name:?} (overrides[{index}])")
            }
            DecidedBy::Override { index, name: None, level } => {
                write!(f, "{state} by {level} override overrides[{index}]")
            }
            DecidedBy::WeeklyHours { index } => write!(f, "{state} by weekly hours (weekly[{index}])"),
            DecidedBy::OutsideWeeklyHours => write!(f, "{state} outside weekly hours"),
        }
    }
}

/// The rule behind a [`ScheduleState`]; indexes point into [`ScheduleConfig`]'s lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecidedBy {
    /// An override covers the instant (the highest level wins; among equals the first listed).
    Override {
        /// Its position in `overrides`.
        index: usize,
        /// Its label.
        name: Option<String>,
        /// The level it applied at.
        level: OverrideLevel,
    },
    /// No override applies and the instant lies in weekly hours.
    WeeklyHours {
        /// The position of the (first matching) entry in `weekly`.
        index: usize,
    },
    /// No override applies and the instant lies outside every weekly interval.
    OutsideWeeklyHours,
}

// ---------------------------------------------------------------------------------------------
// Time zones
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    Utc,
    Fixed(FixedOffset),
    #[cfg(feature = "tz")]
    Iana(chrono_tz::Tz),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    Earliest,
    Latest,
}

impl Zone {
    fn parse(raw: &str) -> std::result::Result<Zone, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("a time zone is required (`UTC`, an offset such as `+02:00`, or an IANA name)".into());
        }
        if trimmed.len() > 64 {
            return Err("a time-zone name is at most 64 characters".into());
        }
        if trimmed == "UTC" || trimmed == "Etc/UTC" {
            return Ok(Zone::Utc);
        }
        let offset_text = trimmed.strip_prefix("UTC").unwrap_or(trimmed);
        if offset_text.starts_with('+') || offset_text.starts_with('-') {
            return parse_offset(offset_text).map(Zone::Fixed).ok_or_else(|| {
                format!("{raw:?} is not a fixed offset (expected +HH:MM or -HH:MM, at most 18:00 either way)")
            });
        }
        Self::parse_iana(trimmed, raw)
    }

    #[cfg(feature = "tz")]
    fn parse_iana(name: &str, raw: &str) -> std::result::Result<Zone, String> {
        name.parse::<chrono_tz::Tz>().map(Zone::Iana).map_err(|_| {
            format!("{raw:?} is not a known IANA time zone (names are case-sensitive, e.g. `Europe/Berlin`)")
        })
    }

    #[cfg(not(feature = "tz"))]
    fn parse_iana(_name: &str, raw: &str) -> std::result::Result<Zone, String> {
        Err(format!(
            "{raw:?} is not `UTC` or a fixed offset such as `+02:00`; IANA zone names need touchpoint's `tz` \
             cargo feature"
        ))
    }

    /// The local wall-clock reading at `at`.
    fn local(&self, at: DateTime<Utc>) -> Option<NaiveDateTime> {
        let utc = at.naive_utc();
        match self {
            Zone::Utc => Some(utc),
            Zone::Fixed(offset) => utc.checked_add_offset(*offset),
            #[cfg(feature = "tz")]
            Zone::Iana(tz) => utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix()),
        }
    }

    /// The instant the wall clock shows `local`: the earliest or latest of two in an overlap,
    /// the first instant after the gap when it never does.
    fn resolve(
        &self,
        local: NaiveDateTime,
        #[cfg_attr(not(feature = "tz"), allow(unused_variables))] pick: Pick,
    ) -> Option<DateTime<Utc>> {
        match self {
            Zone::Utc => Some(local.and_utc()),
            Zone::Fixed(offset) => local.checked_sub_offset(*offset).map(|n| n.and_utc()),
            #[cfg(feature = "tz")]
            Zone::Iana(tz) => match tz.from_local_datetime(&local) {
                chrono::LocalResult::Single(t) => Some(t.to_utc()),
                chrono::LocalResult::Ambiguous(a, b) => {
                    let (a, b) = (a.to_utc(), b.to_utc());
                    Some(match pick {
                        Pick::Earliest => a.min(b),
                        Pick::Latest => a.max(b),
                    })
                }
                chrono::LocalResult::None => {
                    chrono_tz::GapInfo::new(&local, tz).and_then(|gap| gap.end).map(|t| t.to_utc())
                }
            },
        }
    }
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => (rest.get(..2)?, rest.get(2..)?),
        None => (rest, "00"),
    };
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return None;
    }
    let hours: i32 = digits(hours)?;
    let minutes: i32 = digits(minutes)?;
    if minutes > 59 || hours * 60 + minutes > 18 * 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Parses ASCII digits only (no sign, no spaces).
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers
// ---------------------------------------------------------------------------------------------

/// `HH:MM` or `HH:MM:SS` → seconds after midnight; `24:00` → 86 400.
fn parse_clock(text: &str) -> Option<u32> {
    let mut parts = text.trim().split(':');
    let hours: u32 = parts.next().filter(|h| (1..=2).contains(&h.len())).and_then(digits)?;
    let minutes: u32 = parts.next().filter(|m| m.len() == 2).and_then(digits)?;
    let seconds: u32 = match parts.next() {
        Some(s) if s.len() == 2 => digits(s)?,
        Some(_) => return None,
        None => 0,
    };
    if parts.next().is_some() || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = hours * 3600 + minutes * 60 + seconds;
    (total <= DAY_SECS).then_some(total)
}

const DAY_NAMES: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

fn parse_day(text: &str) -> Option<usize> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.len() < 3 {
        return None;
    }
    DAY_NAMES.iter().position(|full| *full == lower || full.get(..3) == Some(lower.as_str()))
}

/// Marks the days an entry names; `Err` carries the piece that is not a day.
fn parse_days(entry: &str, days: &mut [bool; 7]) -> std::result::Result<(), String> {
    for piece in entry.split(',') {
        let piece = piece.trim();
        if let Some((first, last)) = piece.split_once('-') {
            let (Some(first), Some(last)) = (parse_day(first), parse_day(last)) else {
                return Err(piece.to_owned());
            };
            let mut day = first;
            loop {
                days[day] = true;
                if day == last {
                    break;
                }
                day = (day + 1) % 7;
            }
        } else {
            let Some(day) = parse_day(piece) else {
                return Err(piece.to_owned());
            };
            days[day] = true;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Point {
    Date(NaiveDate),
    Local(NaiveDateTime),
    Instant(DateTime<Utc>),
}

fn parse_point(text: &str) -> Option<Point> {
    let text = text.trim();
    if text.len() > 40 {
        return None;
    }
    if !text.contains(['T', 't', ' ']) {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(Point::Date);
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(Point::Instant(instant.to_utc()));
    }
    let normalised = text.replacen(['t', ' '], "T", 1);
    NaiveDateTime::parse_from_str(&normalised, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&normalised, "%Y-%m-%dT%H:%M"))
        .ok()
        .map(Point::Local)
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Schedule
// ---------------------------------------------------------------------------------------------

/// One weekly interval on one weekday, in seconds after that day's local midnight.
#[derive(Debug, Clone, Copy)]
struct DayPart {
    index: usize,
    start: u32,
    /// After `start`; above 86 400 when the interval crosses midnight.
    end: u32,
}

/// An override resolved to instants.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    open: bool,
    level: OverrideLevel,
}

/// From `start` until the next segment's start, override `winner` (if any) decides.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: DateTime<Utc>,
    winner: Option<usize>,
}

/// First year whose open intervals [`Schedule::is_open`] caches.
const CACHE_FIRST_YEAR: i32 = 1970;
/// How many years (from [`CACHE_FIRST_YEAR`]) it caches.
const CACHE_YEARS: usize = 230;

/// Lazily built open intervals per year; derived data, so it is left out of comparisons.
#[derive(Clone, Default)]
struct YearCache(OnceLock<Box<[OnceLock<OpenIntervals>]>>);

/// Sorted, disjoint `[start, end)` open intervals in Unix nanoseconds.
type OpenIntervals = Box<[(i64, i64)]>;

impl fmt::Debug for YearCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built = self.0.get().map_or(0, |years| years.iter().filter(|y| y.get().is_some()).count());
        f.debug_struct("YearCache").field("years_built", &built).finish()
    }
}

/// A validated business-hours schedule. Build one with [`Schedule::new`],
/// [`ScheduleConfig::build`], [`Schedule::from_json`] or by deserialising; it serialises back
/// to its [`ScheduleConfig`].
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use touchpoint::routing::calendar::Schedule;
/// let schedule = Schedule::from_json(r#"{
///     "name": "night-desk", "time_zone": "UTC",
///     "weekly": [{ "days": ["Mon-Fri"], "start": "22:00", "end": "06:00" }]
/// }"#).unwrap();
/// let friday_night = Utc.with_ymd_and_hms(2026, 3, 6, 23, 0, 0).unwrap();
/// assert!(schedule.is_open(friday_night));
/// // It closes on Saturday 06:00 and reopens on Monday 22:00.
/// let closes = schedule.next_change(friday_night).unwrap();
/// assert_eq!(closes, Utc.with_ymd_and_hms(2026, 3, 7, 6, 0, 0).unwrap());
/// assert_eq!(schedule.next_change(closes), Some(Utc.with_ymd_and_hms(2026, 3, 9, 22, 0, 0).unwrap()));
/// // Eight hours of business time from Friday 23:00: seven on Friday night, one on Monday.
/// let due = schedule.add_business_time(friday_night, Duration::hours(8)).unwrap();
/// assert_eq!(due, Some(Utc.with_ymd_and_hms(2026, 3, 9, 23, 0, 0).unwrap()));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ScheduleConfig", into = "ScheduleConfig")]
pub struct Schedule {
    config: ScheduleConfig,
    zone: Zone,
    /// Weekly intervals by the weekday they start on (Monday first).
    days: [Vec<DayPart>; 7],
    overrides: Vec<Resolved>,
    /// Which override decides, as a sorted list of change points.
    segments: Vec<Segment>,
    /// Open intervals per UTC calendar year, built on first use.
    years: YearCache,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for Schedule {}

impl TryFrom<ScheduleConfig> for Schedule {
    type Error = Error;
    fn try_from(config: ScheduleConfig) -> Result<Self> {
        Schedule::new(config)
    }
}

impl From<Schedule> for ScheduleConfig {
    fn from(schedule: Schedule) -> ScheduleConfig {
        schedule.config
    }
}

impl Schedule {
    /// Validates `config`.
    ///
    /// Errors ([`Error::InvalidInput`], `field` set to the field's path without indexes, the
    /// reason starting with the exact path): an empty or over-long name, an unknown time zone
    /// (or an IANA name without the `tz` feature), a day that is not a day, a time that is not
    /// `HH:MM[:SS]` between 00:00 and 24:00, an interval whose start equals its end, a date
    /// that is not `YYYY-MM-DD[THH:MM[:SS]]` (optionally with an offset), an override that
    /// does not end after it starts, two overrides at the same level that overlap with different
    /// states, or more entries than [`MAX_WEEKLY_HOURS`] / [`MAX_OVERRIDES`].
    ///
    /// ```
    /// use touchpoint::Error;
    /// use touchpoint::routing::calendar::ScheduleConfig;
    /// let err = ScheduleConfig::new("support", "UTC").hours("Mon", "09:00", "25:00").build().unwrap_err();
    /// let Error::InvalidInput { field, reason } = err else { panic!() };
    /// assert_eq!(field, "weekly.end");
    /// assert!(reason.starts_with("schedule \"support\": weekly[0].end:"), "{reason}");
    /// ```
    pub fn new(config: ScheduleConfig) -> Result<Schedule> {
        let label = config.name.chars().take(MAX_NAME_LEN).collect::<String>();
        let bad = |field: &'static str, path: String, reason: String| {
            Error::invalid(field, format!("schedule {label:?}: {path}: {reason}"))
        };
        check_name(&config.name).map_err(|r| bad("name", "name".into(), r))?;
        let zone = Zone::parse(&config.time_zone).map_err(|r| bad("time_zone", "time_zone".into(), r))?;
        if config.weekly.len() > MAX_WEEKLY_HOURS {
            return Err(bad("weekly", "weekly".into(), format!("at most {MAX_WEEKLY_HOURS} entries")));
        }
        if config.overrides.len() > MAX_OVERRIDES {
            return Err(bad("overrides", "overrides".into(), format!("at most {MAX_OVERRIDES} entries")));
        }

        let mut days: [Vec<DayPart>; 7] = Default::default();
        for (index, hours) in config.weekly.iter().enumerate() {
            let mut on = [false; 7];
            if hours.days.is_empty() {
                return Err(bad("weekly.days", format!("weekly[{index}].days"), "name at least one day".into()));
            }
            for (d, entry) in hours.days.iter().enumerate() {
                parse_days(entry, &mut on).map_err(|piece| {
                    bad(
                        "weekly.days",
                        format!("weekly[{index}].days[{d}]"),
                        format!("{piece:?} is not a day or a range of days (Mon, Tuesday, Mon-Fri)"),
                    )
                })?;
            }
            let start = parse_clock(&hours.start).filter(|s| *s < DAY_SECS).ok_or_else(|| {
                bad(
                    "weekly.start",
                    format!("weekly[{index}].start"),
                    format!("{:?} is not a time of day (HH:MM or HH:MM:SS, 00:00 to 23:59:59)", hours.start),
                )
            })?;
            let end = parse_clock(&hours.end).ok_or_else(|| {
                bad(
                    "weekly.end",
                    format!("weekly[{index}].end"),
                    format!("{:?} is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)", hours.end),
                )
            })?;
            if start == end {
                return Err(bad(
                    "weekly.end",
                    format!("weekly[{index}].end"),
                    format!(
                        "the interval {}–{} is empty; write 00:00–24:00 for a whole day",
                        hours.start.trim(),
                        hours.end.trim()
                    ),
                ));
            }
            let end = if end > start { end } else { end + DAY_SECS };
            for (day, parts) in days.iter_mut().enumerate() {
                if on[day] {
                    parts.push(DayPart { index, start, end });
                }
            }
        }

        let mut overrides = Vec::with_capacity(config.overrides.len());
        for (index, entry) in config.overrides.iter().enumerate() {
            overrides
                .push(resolve_override(zone, index, entry).map_err(|(field, path, reason)| bad(field, path, reason))?);
        }
        check_contradictions(&overrides).map_err(|(a, b)| {
            let (first, second) = (&config.overrides[a], &config.overrides[b]);
            let describe = |i: usize, o: &ScheduleOverride| match &o.name {
                Some(name) => format!("overrides[{i}] ({name:?})"),
                None => format!("overrides[{i}]"),
            };
            bad(
                "overrides",
                format!("overrides[{b}]"),
                format!(
                    "{} ({}) overlaps {} ({}) at the same level `{}`; make them disjoint or give one a higher level",
                    describe(b, second),
                    state_word(second.state),
                    describe(a, first),
                    state_word(first.state),
                    second.effective_level()
                ),
            )
        })?;
        let segments = build_segments(&overrides);
        Ok(Schedule { config, zone, days, overrides, segments, years: YearCache::default() })
    }

    /// Parses and validates a schedule from JSON. Syntax errors and wrong types are reported as
    /// [`Error::InvalidInput`] on field `schedule`; validation errors as in [`Schedule::new`].
    pub fn from_json(json: &str) -> Result<Schedule> {
        let config: ScheduleConfig = serde_json::from_str(json)
            .map_err(|e| Error::invalid("schedule", format!("not a valid schedule document: {e}")))?;
        Schedule::new(config)
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The time zone as written.
    pub fn time_zone(&self) -> &str {
        &self.config.time_zone
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// Whether the schedule is open at `at`.
    ///
    /// For instants in the years 1970 to 2199 the first query in a UTC calendar year flattens
    /// that year into a sorted list of open intervals (a few hundred entries for office hours,
    /// built in a fraction of a millisecond), and every later query in that year is a binary
    /// search in it; [`next_change`](Self::next_change) and the business-time functions walk the
    /// same lists. Other years are evaluated from the rules each time. Keep schedules (in a
    /// [`Calendars`]) rather than rebuilding them per query.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        match self.year_intervals(at) {
            Some((intervals, nanos)) => {
                let after = intervals.partition_point(|&(start, _)| start <= nanos);
                after.checked_sub(1).and_then(|i| intervals.get(i)).is_some_and(|&(_, end)| nanos < end)
            }
            None => self.evaluate(at),
        }
    }

    /// The flattened open intervals (Unix nanoseconds) of `at`'s year, and `at` in nanoseconds.
    /// A leap second (chrono's nanoseconds past 10⁹) counts as the last instant of the second
    /// it follows, so it belongs to the day and the year it ends, as the rules see it.
    fn year_intervals(&self, at: DateTime<Utc>) -> Option<(&[(i64, i64)], i64)> {
        Some((self.cached_year(at.year())?, unix_nanos(at)?))
    }

    /// The flattened open intervals of UTC calendar year `year`, if it is in the cached range.
    fn cached_year(&self, year: i32) -> Option<&[(i64, i64)]> {
        let slot = usize::try_from(year.checked_sub(CACHE_FIRST_YEAR)?).ok()?;
        let years = self.years.0.get_or_init(|| (0..CACHE_YEARS).map(|_| OnceLock::new()).collect());
        Some(years.get(slot)?.get_or_init(|| self.flatten_year(year)))
    }

    /// The open intervals of UTC calendar year `year`, from the rules.
    fn flatten_year(&self, year: i32) -> OpenIntervals {
        let (Some(start), Some(end)) = (
            Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single(),
            Utc.with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0).single(),
        ) else {
            return Box::default();
        };
        let nanos = |t: DateTime<Utc>| t.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let mut intervals = Vec::new();
        let mut open_since = self.evaluate(start).then_some(start);
        for (t, open) in self.flips(start, end) {
            if t >= end {
                break;
            }
            match (open, open_since) {
                (true, None) => open_since = Some(t),
                (false, Some(since)) => {
                    intervals.push((nanos(since), nanos(t)));
                    open_since = None;
                }
                _ => {}
            }
        }
        if let Some(since) = open_since {
            intervals.push((nanos(since), nanos(end)));
        }
        intervals.into_boxed_slice()
    }

    /// Whether the schedule is open at `at`, from the rules (no cache).
    fn evaluate(&self, at: DateTime<Utc>) -> bool {
        match self.override_at(at) {
            Some(i) => self.overrides.get(i).is_some_and(|o| o.open),
            None => self.weekly_at(at).is_some(),
        }
    }

    /// Whether the schedule is open at `at`, and which rule decided (for "why was this not
    /// routed?").
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use touchpoint::routing::calendar::{DecidedBy, ScheduleConfig};
    /// let s = ScheduleConfig::new("support", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
    /// let state = s.state_at(Utc.with_ymd_and_hms(2026, 3, 7, 10, 0, 0).unwrap()); // a Saturday
    /// assert!(!state.open);
    /// assert_eq!(state.decided_by, DecidedBy::OutsideWeeklyHours);
    /// ```
    pub fn state_at(&self, at: DateTime<Utc>) -> ScheduleState {
        if let Some(index) = self.override_at(at)
            && let (Some(resolved), Some(entry)) = (self.overrides.get(index), self.config.overrides.get(index))
        {
            return ScheduleState {
                open: resolved.open,
                decided_by: DecidedBy::Override { index, name: entry.name.clone(), level: resolved.level },
            };
        }
        match self.weekly_at(at) {
            Some(index) => ScheduleState { open: true, decided_by: DecidedBy::WeeklyHours { index } },
            None => ScheduleState { open: false, decided_by: DecidedBy::OutsideWeeklyHours },
        }
    }

    /// The first instant after `after` at which [`is_open`](Self::is_open) gives a different
    /// answer than at `after`, looking [`NEXT_CHANGE_HORIZON_DAYS`] days ahead; `None` if it
    /// stays the same that long (always open, or closed for more than a year).
    pub fn next_change(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limit =
            after.checked_add_signed(Duration::days(NEXT_CHANGE_HORIZON_DAYS)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.changes(after, limit).next().map(|(t, _)| t)
    }

    /// Like [`next_change`](Self::next_change), looking `within` ahead instead (at most
    /// [`SEARCH_LIMIT_DAYS`] days; a negative or longer horizon is an [`Error::InvalidInput`]).
    pub fn next_change_within(&self, after: DateTime<Utc>, within: Duration) -> Result<Option<DateTime<Utc>>> {
        if within < Duration::zero() || within > Duration::days(SEARCH_LIMIT_DAYS) {
            return Err(Error::invalid(
                "within",
                format!("the search horizon must be between 0 and {SEARCH_LIMIT_DAYS} days, not {within}"),
            ));
        }
        let limit = after.checked_add_signed(within).unwrap_or(DateTime::<Utc>::MAX_UTC);
        Ok(self.changes(after, limit).next().map(|(t, _)| t))
    }

    /// The business time (time the schedule is open) in `[from, to)`.
    ///
    /// Errors with [`Error::InvalidInput`] if `to` is before `from` or the span is longer than
    /// [`SEARCH_LIMIT_DAYS`] days.
    ///
    /// ```
    /// use chrono::{Duration, TimeZone, Utc};
    /// use touchpoint::routing::calendar::ScheduleConfig;
    /// let s = ScheduleConfig::new("support", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
    /// let friday = Utc.with_ymd_and_hms(2026, 3, 6, 15, 0, 0).unwrap();
    /// let monday = Utc.with_ymd_and_hms(2026, 3, 9, 11, 0, 0).unwrap();
    /// assert_eq!(s.open_duration_between(friday, monday).unwrap(), Duration::hours(4));
    /// ```
    pub fn open_duration_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Duration> {
        if to < from {
            return Err(Error::invalid("to", format!("the range ends ({to}) before it starts ({from})")));
        }
        if to.signed_duration_since(from) > Duration::days(SEARCH_LIMIT_DAYS) {
            return Err(Error::invalid(
                "to",
                format!("business time is measured over at most {SEARCH_LIMIT_DAYS} days"),
            ));
        }
        let mut open = self.is_open(from);
        let mut cursor = from;
        let mut total = Duration::zero();
        for (t, now_open) in self.changes(from, to) {
            if open {
                total += t.signed_duration_since(cursor);
            }
            cursor = t;
            open = now_open;
        }
        if open {
            total += to.signed_duration_since(cursor);
        }
        Ok(total)
    }

    /// The earliest instant by which the schedule has been open for `amount` after `start`: the
    /// due time of an SLA counted in business hours. A zero amount is due at `start`.
    ///
    /// `Ok(None)` if the schedule is not open that long within [`SEARCH_LIMIT_DAYS`] days of
    /// `start`; a negative amount is an [`Error::InvalidInput`].
    pub fn add_business_time(&self, start: DateTime<Utc>, amount: Duration) -> Result<Option<DateTime<Utc>>> {
        if amount < Duration::zero() {
            return Err(Error::invalid("amount", format!("business time to add must not be negative ({amount})")));
        }
        if amount.is_zero() {
            return Ok(Some(start));
        }
        let limit = start.checked_add_signed(Duration::days(SEARCH_LIMIT_DAYS)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut remaining = amount;
        let mut cursor = start;
        let mut open = self.is_open(start);
        for (t, now_open) in self.changes(start, limit) {
            if open {
                let span = t.signed_duration_since(cursor);
                if span >= remaining {
                    return Ok(cursor.checked_add_signed(remaining));
                }
                remaining -= span;
            }
            cursor = t;
            open = now_open;
        }
        if open {
            return Ok(cursor.checked_add_signed(remaining).filter(|due| *due <= limit));
        }
        Ok(None)
    }

    /// The override deciding at `at`, if any.
    fn override_at(&self, at: DateTime<Utc>) -> Option<usize> {
        let after = self.segments.partition_point(|s| s.start <= at);
        after.checked_sub(1).and_then(|i| self.segments.get(i)).and_then(|s| s.winner)
    }

    /// The first weekly entry (in list order) whose interval contains `at`, if any.
    fn weekly_at(&self, at: DateTime<Utc>) -> Option<usize> {
        let mut found: Option<usize> = None;
        self.for_each_span_near(at, |index, start, end| {
            if start <= at && at < end && found.is_none_or(|f| index < f) {
                found = Some(index);
            }
        });
        found
    }

    /// How many weekly intervals contain `at`.
    fn weekly_count_at(&self, at: DateTime<Utc>) -> i64 {
        let mut count = 0;
        self.for_each_span_near(at, |_, start, end| {
            if start <= at && at < end {
                count += 1;
            }
        });
        count
    }

    /// Calls `f(weekly index, start, end)` for every weekly interval that may contain `at`.
    fn for_each_span_near(&self, at: DateTime<Utc>, mut f: impl FnMut(usize, DateTime<Utc>, DateTime<Utc>)) {
        let Some(local) = self.zone.local(at) else { return };
        // An interval lasts less than two local days; where clocks jump back, its instants can
        // reach further, so look a few days either side of the local date.
        // Near the start of chrono's calendar there are fewer days to look back on.
        let mut day = local.date().checked_sub_days(chrono::Days::new(REACH_BACK_DAYS)).unwrap_or(NaiveDate::MIN);
        for _ in 0..=REACH_BACK_DAYS + REACH_AHEAD_DAYS {
            for part in self.parts(day) {
                if let Some((start, end)) = self.span(day, part) {
                    f(part.index, start, end);
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return,
            }
        }
    }

    fn parts(&self, day: NaiveDate) -> &[DayPart] {
        self.days.get(day.weekday().num_days_from_monday() as usize).map_or(&[], Vec::as_slice)
    }

    /// The instants a weekly interval starting on local `day` covers.
    fn span(&self, day: NaiveDate, part: &DayPart) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let midnight = day.and_time(NaiveTime::MIN);
        let start = midnight.checked_add_signed(Duration::seconds(part.start.into()))?;
        let end = midnight.checked_add_signed(Duration::seconds(part.end.into()))?;
        Some((self.zone.resolve(start, Pick::Earliest)?, self.zone.resolve(end, end_pick(end))?))
    }

    /// Every edge in `(lo, hi]` (at most a window apart): weekly interval starts and ends and
    /// changes of the deciding override, unsorted.
    fn edges(&self, lo: DateTime<Utc>, hi: DateTime<Utc>, out: &mut Vec<(DateTime<Utc>, Edge)>) {
        let first = self.segments.partition_point(|s| s.start <= lo);
        out.extend(
            self.segments.iter().skip(first).take_while(|s| s.start <= hi).map(|s| (s.start, Edge::Override(s.winner))),
        );
        if self.days.iter().all(Vec::is_empty) {
            return;
        }
        // Before the first local day of chrono's calendar, its intervals are still ahead.
        let lo_day = match self.zone.local(lo) {
            Some(l) => l.date(),
            None if lo < DateTime::UNIX_EPOCH => NaiveDate::MIN,
            None => return,
        };
        let last_day = self
            .zone
            .local(hi)
            .and_then(|l| l.date().checked_add_days(chrono::Days::new(REACH_AHEAD_DAYS)))
            .unwrap_or(NaiveDate::MAX);
        let mut day = lo_day.checked_sub_days(chrono::Days::new(REACH_BACK_DAYS)).unwrap_or(NaiveDate::MIN);
        // A window spans at most WINDOW_DAYS days; the bound keeps a zone jumping whole days
        // from running away.
        for _ in 0..WINDOW_DAYS + 2 * (REACH_BACK_DAYS + REACH_AHEAD_DAYS) as i64 + 2 {
            if day > last_day {
                return;
            }
            for part in self.parts(day) {
                if let Some((start, end)) = self.span(day, part).filter(|(start, end)| start < end) {
                    if lo < start && start <= hi {
                        out.push((start, Edge::Open));
                    }
                    if lo < end && end <= hi {
                        out.push((end, Edge::Close));
                    }
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return,
            }
        }
    }

    /// The instants in `(from, limit]` where `is_open` changes, with the new state: through
    /// the per-year cache where it applies, from the rules elsewhere.
    fn changes(&self, from: DateTime<Utc>, limit: DateTime<Utc>) -> Changes<'_> {
        Changes {
            schedule: self,
            open: self.is_open(from),
            cursor: from,
            limit,
            year: from.year(),
            index: None,
            slow: None,
            done: false,
        }
    }

    /// The instants in `(from, limit]` where the rules change `is_open`, with the new state.
    fn flips(&self, from: DateTime<Utc>, limit: DateTime<Utc>) -> Flips<'_> {
        Flips {
            schedule: self,
            open: self.evaluate(from),
            weekly: self.weekly_count_at(from),
            winner: self.override_at(from),
            window_start: from,
            limit,
            pending: Vec::new(),
        }
    }
}

fn state_word(state: OverrideState) -> &'static str {
    match state {
        OverrideState::Open => "open",
        OverrideState::Closed => "closed",
    }
}

fn resolve_override(
    zone: Zone,
    index: usize,
    entry: &ScheduleOverride,
) -> std::result::Result<Resolved, (&'static str, String, String)> {
    if let Some(name) = &entry.name {
        check_name(name).map_err(|r| ("overrides.name", format!("overrides[{index}].name"), r))?;
    }
    let unresolvable = |field: &'static str, what: &str, text: &str| {
        (field, format!("overrides[{index}].{what}"), format!("{text:?} has no instant in this time zone"))
    };
    let from = parse_point(&entry.from).ok_or_else(|| {
        (
            "overrides.from",
            format!("overrides[{index}].from"),
            format!(
                "{:?} is not a date (YYYY-MM-DD), a local date-time (YYYY-MM-DDTHH:MM[:SS]) or an instant with an \
                 offset",
                entry.from
            ),
        )
    })?;
    let start = match from {
        Point::Date(d) => zone.resolve(d.and_time(NaiveTime::MIN), Pick::Earliest),
        Point::Local(l) => zone.resolve(l, Pick::Earliest),
        Point::Instant(i) => Some(i),
    }
    .ok_or_else(|| unresolvable("overrides.from", "from", &entry.from))?;
    let end = match (&entry.to, from) {
        (None, Point::Date(d)) => end_of_date(zone, d),
        (None, _) => {
            return Err((
                "overrides.to",
                format!("overrides[{index}].to"),
                "is required when `from` has a time of day".into(),
            ));
        }
        (Some(to), _) => match parse_point(to) {
            Some(Point::Date(d)) => end_of_date(zone, d),
            Some(Point::Local(l)) => zone.resolve(l, end_pick(l)),
            Some(Point::Instant(i)) => Some(i),
            None => {
                return Err((
                    "overrides.to",
                    format!("overrides[{index}].to"),
                    format!(
                        "{to:?} is not a date (YYYY-MM-DD), a local date-time (YYYY-MM-DDTHH:MM[:SS]) or an instant \
                         with an offset"
                    ),
                ));
            }
        },
    }
    .ok_or_else(|| unresolvable("overrides.to", "to", entry.to.as_deref().unwrap_or(&entry.from)))?;
    // A bound inside a leap second counts as the last instant of the second it follows, as
    // queries do (`unix_nanos`), so the per-year cache and the rules agree on it.
    let (start, end) = (collapse_leap(start), collapse_leap(end));
    if end <= start {
        return Err((
            "overrides.to",
            format!("overrides[{index}].to"),
            format!("the override must end after it starts (it runs from {start} to {end} in UTC)"),
        ));
    }
    Ok(Resolved { start, end, open: entry.state == OverrideState::Open, level: entry.effective_level() })
}

/// `t`, or for an instant inside a leap second the last nanosecond of the second it follows.
fn collapse_leap(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.nanosecond() >= 1_000_000_000 { t.with_nanosecond(999_999_999).unwrap_or(t) } else { t }
}

/// The first midnight of the local date after `d`, where `d` ends.
fn end_of_date(zone: Zone, d: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = d.succ_opt()?.and_time(NaiveTime::MIN);
    zone.resolve(midnight, end_pick(midnight))
}

/// Which pass of a repeated local time an end takes: the last (the interval follows the wall
/// clock through a repeated hour), but at midnight the first, for a repeated midnight already
/// belongs to the next date.
fn end_pick(end: NaiveDateTime) -> Pick {
    if end.time() == NaiveTime::MIN { Pick::Earliest } else { Pick::Latest }
}

/// Finds two overrides at the same level with overlapping ranges and different states.
fn check_contradictions(overrides: &[Resolved]) -> std::result::Result<(), (usize, usize)> {
    let mut order: Vec<usize> = (0..overrides.len()).collect();
    order.sort_by_key(|&i| overrides.get(i).map(|o| (o.level, o.start)));
    // Per level, the latest-ending open and closed override seen so far (sorted by start).
    let mut level = None;
    let mut reach: [Option<(DateTime<Utc>, usize)>; 2] = [None, None];
    for i in order {
        let Some(o) = overrides.get(i) else { continue };
        if level != Some(o.level) {
            level = Some(o.level);
            reach = [None, None];
        }
        let (mine, other) = if o.open { (0, 1) } else { (1, 0) };
        if let Some((end, j)) = reach[other]
            && end > o.start
        {
            return Err((j.min(i), j.max(i)));
        }
        if reach[mine].is_none_or(|(end, _)| o.end > end) {
            reach[mine] = Some((o.end, i));
        }
    }
    Ok(())
}

/// Sweeps the overrides into change points of "which override decides".
fn build_segments(overrides: &[Resolved]) -> Vec<Segment> {
    let mut events: Vec<(DateTime<Utc>, bool, usize)> = Vec::with_capacity(overrides.len() * 2);
    for (i, o) in overrides.iter().enumerate() {
        events.push((o.start, true, i));
        events.push((o.end, false, i));
    }
    events.sort_by_key(|&(t, starts, i)| (t, starts, i));
    let mut active: BTreeSet<(Reverse<OverrideLevel>, usize)> = BTreeSet::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut k = 0;
    while let Some(&(t, _, _)) = events.get(k) {
        while let Some(&(at, starts, i)) = events.get(k) {
            if at != t {
                break;
            }
            let level = overrides.get(i).map_or(OverrideLevel::Open, |o| o.level);
            if starts {
                active.insert((Reverse(level), i));
            } else {
                active.remove(&(Reverse(level), i));
            }
            k += 1;
        }
        let winner = active.first().map(|&(_, i)| i);
        if segments.last().map(|s| s.winner) != Some(winner) {
            segments.push(Segment { start: t, winner });
        }
    }
    segments
}

#[derive(Debug, Clone, Copy)]
enum Edge {
    /// A weekly interval starts.
    Open,
    /// A weekly interval ends.
    Close,
    /// From here this override (or none) decides.
    Override(Option<usize>),
}

/// Walks the state changes of a schedule window by window, counting the weekly intervals in
/// force and tracking the deciding override.
struct Flips<'a> {
    schedule: &'a Schedule,
    open: bool,
    /// Weekly intervals containing the current instant.
    weekly: i64,
    winner: Option<usize>,
    window_start: DateTime<Utc>,
    limit: DateTime<Utc>,
    /// Edges of the current window, latest first.
    pending: Vec<(DateTime<Utc>, Edge)>,
}

impl Iterator for Flips<'_> {
    type Item = (DateTime<Utc>, bool);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(&(t, _)) = self.pending.last() {
                while let Some(&(at, edge)) = self.pending.last() {
                    if at != t {
                        break;
                    }
                    self.pending.pop();
                    match edge {
                        Edge::Open => self.weekly += 1,
                        Edge::Close => self.weekly -= 1,
                        Edge::Override(winner) => self.winner = winner,
                    }
                }
                let open = match self.winner {
                    Some(i) => self.schedule.overrides.get(i).is_some_and(|o| o.open),
                    None => self.weekly > 0,
                };
                if open != self.open {
                    self.open = open;
                    return Some((t, open));
                }
                continue;
            }
            if self.window_start >= self.limit {
                return None;
            }
            let end = self
                .window_start
                .checked_add_signed(Duration::days(WINDOW_DAYS))
                .map_or(self.limit, |e| e.min(self.limit));
            self.schedule.edges(self.window_start, end, &mut self.pending);
            self.pending.sort_unstable_by_key(|edge| Reverse(edge.0));
            self.window_start = end;
        }
    }
}

/// State changes read from the per-year cache: a change can only happen at an edge of a cached
/// interval (the year's own edges and the clipped ends at year boundaries), so each edge after
/// the cursor is checked with `is_open`. Outside the cached years it hands over to [`Flips`].
struct Changes<'a> {
    schedule: &'a Schedule,
    open: bool,
    /// The last change yielded (or the start): every change up to here has been reported.
    cursor: DateTime<Utc>,
    limit: DateTime<Utc>,
    year: i32,
    /// Next edge of `year` to look at (`2 * interval + 0` for a start, `+ 1` for an end).
    index: Option<usize>,
    slow: Option<Flips<'a>>,
    done: bool,
}

impl Iterator for Changes<'_> {
    type Item = (DateTime<Utc>, bool);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some(slow) = self.slow.as_mut() {
                return slow.next();
            }
            let Some(intervals) = self.schedule.cached_year(self.year) else {
                self.slow = Some(self.schedule.flips(self.cursor, self.limit));
                continue;
            };
            let mut index = match self.index {
                Some(index) => index,
                None => {
                    let cursor = unix_nanos(self.cursor).unwrap_or(i64::MIN);
                    2 * intervals.partition_point(|&(_, end)| end <= cursor)
                }
            };
            while let Some(&(start, end)) = intervals.get(index / 2) {
                let edge = DateTime::from_timestamp_nanos(if index % 2 == 0 { start } else { end });
                index += 1;
                if edge <= self.cursor {
                    continue;
                }
                if edge > self.limit {
                    self.done = true;
                    return None;
                }
                let open = self.schedule.is_open(edge);
                if open != self.open {
                    self.open = open;
                    self.cursor = edge;
                    self.index = Some(index);
                    return Some((edge, open));
                }
            }
            self.year = match self.year.checked_add(1) {
                Some(year) => year,
                None => {
                    self.done = true;
                    return None;
                }
            };
            self.index = None;
            match Utc.with_ymd_and_hms(self.year, 1, 1, 0, 0, 0).single() {
                Some(start) if start <= self.limit => {}
                _ => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registry and follow-the-sun
// ---------------------------------------------------------------------------------------------

/// Schedules by name: what routing expressions look up as `schedule("support").open`.
///
/// Serialises as a list of schedules; deserialising refuses duplicate names.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use touchpoint::Error;
/// use touchpoint::routing::calendar::{Calendars, ScheduleConfig};
/// let mut calendars = Calendars::new();
/// calendars.insert(ScheduleConfig::new("support", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap());
/// let monday_noon = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
/// assert!(calendars.is_open("support", monday_noon).unwrap());
/// assert!(matches!(calendars.is_open("sales", monday_noon), Err(Error::NotFound { entity: "schedule", .. })));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Schedule>", into = "Vec<Schedule>")]
pub struct Calendars {
    schedules: BTreeMap<String, Schedule>,
}

impl TryFrom<Vec<Schedule>> for Calendars {
    type Error = Error;
    fn try_from(schedules: Vec<Schedule>) -> Result<Self> {
        Calendars::from_schedules(schedules)
    }
}

impl From<Calendars> for Vec<Schedule> {
    fn from(calendars: Calendars) -> Vec<Schedule> {
        calendars.schedules.into_values().collect()
    }
}

impl Calendars {
    /// An empty registry.
    pub fn new() -> Self {
        Calendars::default()
    }

    /// A registry of `schedules`; two with the same name are an [`Error::InvalidInput`].
    pub fn from_schedules(schedules: impl IntoIterator<Item = Schedule>) -> Result<Self> {
        let mut calendars = Calendars::new();
        for schedule in schedules {
            if calendars.schedules.contains_key(schedule.name()) {
                return Err(Error::invalid(
                    "calendars",
                    format!("two schedules are named {:?}; names must be unique", schedule.name()),
                ));
            }
            calendars.insert(schedule);
        }
        Ok(calendars)
    }

    /// Adds `schedule` under its name, returning the one it replaces.
    pub fn insert(&mut self, schedule: Schedule) -> Option<Schedule> {
        self.schedules.insert(schedule.name().to_owned(), schedule)
    }

    /// Removes and returns the schedule called `name`.
    pub fn remove(&mut self, name: &str) -> Option<Schedule> {
        self.schedules.remove(name)
    }

    /// The schedule called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    /// The schedule called `name`, or [`Error::NotFound`] (entity `schedule`).
    pub fn schedule(&self, name: &str) -> Result<&Schedule> {
        self.schedules.get(name).ok_or_else(|| Error::not_found("schedule", format!("{name:?}")))
    }

    /// `schedule(name).open` at `at`; an unknown name is [`Error::NotFound`].
    pub fn is_open(&self, name: &str, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.schedule(name)?.is_open(at))
    }

    /// [`Schedule::state_at`] of the schedule called `name`; an unknown name is
    /// [`Error::NotFound`].
    pub fn state_at(&self, name: &str, at: DateTime<Utc>) -> Result<ScheduleState> {
        Ok(self.schedule(name)?.state_at(at))
    }

    /// The schedules, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.schedules.keys().map(String::as_str)
    }

    /// How many schedules there are.
    pub fn len(&self) -> usize {
        self.schedules.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.schedules.is_empty()
    }

    /// The schedules open at `at`, by name ([`open_schedules`]).
    pub fn open_at(&self, at: DateTime<Utc>) -> Vec<&Schedule> {
        open_schedules(self.iter(), at)
    }

    /// The closed schedule that opens first after `after` ([`next_to_open`]).
    pub fn next_to_open(&self, after: DateTime<Utc>) -> Option<Opening<'_>> {
        next_to_open(self.iter(), after)
    }
}

/// A schedule and the instant it opens (see [`next_to_open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening<'a> {
    /// The schedule.
    pub schedule: &'a Schedule,
    /// When it opens.
    pub at: DateTime<Utc>,
}

/// Follow the sun: which of `schedules` (say, one per regional team) are open at `at`, in the
/// order given.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use touchpoint::routing::calendar::{next_to_open, open_schedules, ScheduleConfig};
/// let regions = [
///     ScheduleConfig::new("apac", "+08:00").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
///     ScheduleConfig::new("emea", "+01:00").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
///     ScheduleConfig::new("amer", "-05:00").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
/// ];
/// let at = Utc.with_ymd_and_hms(2026, 3, 3, 9, 0, 0).unwrap(); // Tuesday 09:00 UTC
/// let open: Vec<&str> = open_schedules(&regions, at).iter().map(|s| s.name()).collect();
/// assert_eq!(open, ["emea"]);
/// let next = next_to_open(&regions, at).unwrap();
/// assert_eq!((next.schedule.name(), next.at), ("amer", Utc.with_ymd_and_hms(2026, 3, 3, 14, 0, 0).unwrap()));
/// ```
pub fn open_schedules<'a>(schedules: impl IntoIterator<Item = &'a Schedule>, at: DateTime<Utc>) -> Vec<&'a Schedule> {
    schedules.into_iter().filter(|s| s.is_open(at)).collect()
}

/// Follow the sun: among `schedules` closed at `after`, the one that opens first (within
/// [`NEXT_CHANGE_HORIZON_DAYS`]), and when. Ties go to the first given. `None` if none of them
/// opens within the horizon.
pub fn next_to_open<'a>(
    schedules: impl IntoIterator<Item = &'a Schedule>,
    after: DateTime<Utc>,
) -> Option<Opening<'a>> {
    let mut best: Option<Opening<'a>> = None;
    for schedule in schedules {
        if schedule.is_open(after) {
            continue;
        }
        if let Some(at) = schedule.next_change(after)
            && best.is_none_or(|b| at < b.at)
        {
            best = Some(Opening { schedule, at });
        }
    }
    best
}

/// `t` in Unix nanoseconds, a leap second (chrono's nanoseconds past 10⁹) counted as the last
/// instant of the second it follows, so that it falls in the day and year it ends.
fn unix_nanos(t: DateTime<Utc>) -> Option<i64> {
    t.timestamp().checked_mul(1_000_000_000)?.checked_add(i64::from(t.nanosecond().min(999_999_999)))
}
