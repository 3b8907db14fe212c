//! Routing: deciding who (agent, queue or bot) handles a piece of work.
//!
//! * [`expr`] — the expression language every routing decision is written in: rule
//!   conditions over the item, agent eligibility (agent attributes against item attributes),
//!   and step guards over live queue statistics, calendars and the clock.
//! * [`calendar`] — business-hours schedules in IANA time zones with holidays and overrides.

pub mod calendar;
pub mod expr;
