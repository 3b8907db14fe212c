//! Routing: rule language, plans, agent pool and queues, capacity, offers, timers and calendars.

pub mod calendar;
