//! The contact-center simulation of `examples/simulate` against queueing theory: driven through
//! the real router, a single-skill M/M/c queue must show the waits Erlang C predicts, and a seed
//! must replay the same day.
//!
//! The simulation's code is the example's own file, included here (one copy).

#[path = "../examples/simulate/sim.rs"]
mod sim;

use sim::{ErlangC, MmcConfig, Scenario};
use touchpoint::Error;

/// λ = 19.2/h, μ = 12/h (5-minute calls), c = 2: utilisation 0.8, Erlang C wait 533 s.
///
/// Two independent replications of 200 000 measured contacts, on two threads, pooled. Batch
/// means put the standard error of the pooled mean wait at about 1.7 % of it, and 40
/// replications of this size spread by about as much, so the 5 % tolerance is about three
/// standard errors. (More contacts would cost more than the ~30 s this test may take in a
/// debug build on a busy machine.)
fn mmc_config(seed: u64) -> MmcConfig {
    MmcConfig { customers: 200_000, warmup: 5_000, batches: 40, replications: 2, ..MmcConfig::new(seed, 19.2, 12.0, 2) }
}

#[test]
fn erlang_c_agrees_with_closed_forms_and_tables() {
    let per_hour = |x: f64| x / 3600.0;
    // c = 1 is M/M/1: P(wait) = ρ, Wq = ρ / (μ − λ).
    let e = ErlangC::new(1, per_hour(8.0), per_hour(10.0)).unwrap();
    assert!((e.prob_wait - 0.8).abs() < 1e-12, "{e:?}");
    assert!((e.mean_wait - 0.8 / per_hour(2.0)).abs() < 1e-6, "{e:?}");
    // c = 2: P(wait) = 2ρ² / (1 + ρ).
    let e = ErlangC::new(2, per_hour(19.2), per_hour(12.0)).unwrap();
    assert!((e.prob_wait - 2.0 * 0.64 / 1.8).abs() < 1e-12, "{e:?}");
    assert!((e.mean_wait - 533.333_333).abs() < 1e-3, "{e:?}");
    // Published table value: 8 Erlangs on 10 agents wait with probability 0.4092.
    let e = ErlangC::new(10, 8.0, 1.0).unwrap();
    assert!((e.prob_wait - 0.4092).abs() < 5e-5, "{e:?}");
    // The service level at T = 0 is the chance of not waiting.
    assert!((e.service_level(0.0) - (1.0 - e.prob_wait)).abs() < 1e-12);
    assert!(e.service_level(20.0) > e.service_level(10.0));
    // Thousands of agents: no overflow (factorials would), a probability between 0 and 1.
    let e = ErlangC::new(5000, 4750.0, 1.0).unwrap();
    assert!(e.prob_wait.is_finite() && e.prob_wait > 0.0 && e.prob_wait < 1.0, "{e:?}");
}

#[test]
fn erlang_c_refuses_unstable_or_meaningless_queues() {
    for (c, lambda, mu) in [(2, 2.0, 1.0), (2, 3.0, 1.0), (0, 1.0, 1.0), (2, -1.0, 1.0), (2, 1.0, f64::NAN)] {
        let err = ErlangC::new(c, lambda, mu).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "c={c} λ={lambda} μ={mu}: {err}");
    }
    let err = sim::run_mmc(MmcConfig::new(1, 24.0, 12.0, 2)).unwrap_err();
    assert!(err.to_string().contains("not below 1"), "{err}");
}

#[test]
fn mmc_through_the_router_matches_erlang_c() {
    let report = sim::run_mmc(mmc_config(1)).unwrap();
    let exact = report.erlang;
    eprintln!("{report}");
    let wait = report.mean_wait;
    assert!(
        wait.std_error < 0.025 * exact.mean_wait,
        "the estimate is too noisy to test against 5 %: {:.2} ± {:.2} s",
        wait.mean,
        wait.std_error
    );
    assert!(
        wait.relative_error(exact.mean_wait).abs() < 0.05,
        "mean wait {:.2} s (± {:.2}) vs Erlang C {:.2} s",
        wait.mean,
        wait.std_error,
        exact.mean_wait
    );
    // P(wait > 0): about 0.4 % standard error per replication; 2 % is five of them.
    for r in &report.replications {
        assert!(
            r.prob_wait.relative_error(exact.prob_wait).abs() < 0.02,
            "seed {}: P(wait > 0) {:.4} vs Erlang C {:.4}",
            r.seed,
            r.prob_wait.mean,
            exact.prob_wait
        );
        let s = &r.run.streams[0];
        assert_eq!((s.offered, s.handled, s.abandoned, s.unanswered), (205_000, 205_000, 0, 0));
    }
    assert!(
        report.service_level.relative_error(exact.service_level(20.0)).abs() < 0.03,
        "service level {:.4} vs {:.4}",
        report.service_level.mean,
        exact.service_level(20.0)
    );
    assert!((report.occupancy - 0.8).abs() < 0.01, "occupancy {}", report.occupancy);
}

#[test]
fn the_same_seed_replays_the_same_day() {
    let first = sim::run(&Scenario::day(7, 3.0)).unwrap();
    let again = sim::run(&Scenario::day(7, 3.0)).unwrap();
    assert_eq!(first, again);
    assert_eq!(first.to_string(), again.to_string());
    let other = sim::run(&Scenario::day(8, 3.0)).unwrap();
    assert_ne!(first.streams, other.streams, "the seed drives arrivals, handle times and patience");
}

#[test]
fn the_same_seed_replays_the_same_mmc_run_on_any_thread() {
    let config = MmcConfig { customers: 5_000, warmup: 500, replications: 2, ..MmcConfig::new(11, 19.2, 12.0, 2) };
    let both = sim::run_mmc(config).unwrap();
    assert_eq!(both, sim::run_mmc(config).unwrap());
    // Replication 2 is seed 12 whether it runs beside seed 11 or alone.
    let alone = sim::run_mmc(MmcConfig { seed: 12, replications: 1, ..config }).unwrap();
    assert_eq!(both.replications[1], alone.replications[0]);
    assert_ne!(both.replications[0].run.waits, both.replications[1].run.waits);
    assert_eq!(both.to_string(), sim::run_mmc(config).unwrap().to_string());
}

#[test]
fn a_day_accounts_for_every_contact() {
    let report = sim::run(&Scenario::day(3, 10.0)).unwrap();
    eprintln!("{report}");
    for s in &report.streams {
        assert!(s.offered > 0, "{s:?}");
        assert_eq!(s.offered, s.handled + s.abandoned + s.unanswered, "{s:?}");
        assert!(s.within_target <= s.handled);
        assert!((0.0..=1.0).contains(&s.service_level()) && (0.0..=1.0).contains(&s.occupancy()), "{s:?}");
    }
    let email = report.streams.iter().find(|s| s.channel == "email").unwrap();
    assert_eq!((email.abandoned, email.unanswered), (0, 0), "email customers do not hang up");
    assert!(report.streams.iter().any(|s| s.abandoned > 0), "impatient callers hang up at the peaks");
    // Chat agents hold three chats: while busy they carry more than one on average.
    let chat = report.groups.iter().find(|g| g.name == "chat").unwrap();
    assert!(chat.slot_use * 3.0 > chat.occupancy * 1.2, "{chat:?}");
    assert!(report.offers_expired > 0, "some offers ring out and go to someone else");
    // Skills and memberships reach the router: Spanish calls go only to the Spanish queue's members,
    // sales contacts (sales skill 2) never to the blended agents (skill 1), email only to those
    // with email capacity, and the Spanish speakers also help in support (after 30 s).
    let sc = Scenario::day(3, 10.0);
    let stream = |queue: &str, channel: &str| {
        sc.streams.iter().position(|s| s.queue == queue && s.channel.as_str() == channel).unwrap()
    };
    let group = |name: &str| report.groups.iter().find(|g| g.name == name).unwrap();
    let (es, sales_voice, sales_chat, email, support_voice) = (
        stream("support-es", "voice"),
        stream("sales", "voice"),
        stream("sales", "webchat"),
        stream("support", "email"),
        stream("support", "voice"),
    );
    for g in &report.groups {
        let took = |s: usize| g.handled_per_stream[s];
        assert_eq!(took(es) > 0, g.name == "voice-es", "{g:?}");
        if g.name == "blended" {
            assert_eq!((took(sales_voice), took(sales_chat)), (0, 0), "{g:?}");
        }
        assert_eq!(took(email) > 0, g.name == "blended" || g.name == "email", "{g:?}");
    }
    assert!(group("voice-es").handled_per_stream[support_voice] > 0);
    let answered: u64 = report.groups.iter().map(|g| g.handled).sum();
    assert_eq!(answered, report.streams.iter().map(|s| s.handled).sum::<u64>());
}

#[test]
fn bad_scenarios_are_refused_without_running() {
    for hours in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
        let err = sim::run(&Scenario::day(1, hours)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{hours}: {err}");
    }
    let mut sc = Scenario::day(1, 1.0);
    sc.streams[0].per_hour = f64::NAN;
    assert!(matches!(sim::run(&sc), Err(Error::InvalidInput { .. })));
    for rate in [-1.0, f64::NAN] {
        let mut sc = Scenario::day(1, 1.0);
        sc.offers = sc.offers.map(|o| sim::Offers { accept_delay: sim::Dist::Exponential { mean: rate }, ..o });
        assert!(matches!(sim::run(&sc), Err(Error::InvalidInput { .. })), "{rate}");
    }
    let mut config = MmcConfig::new(1, 9.6, 12.0, 1);
    config.batches = 1;
    assert!(matches!(sim::run_mmc(config), Err(Error::InvalidInput { .. })));
}

#[test]
fn contacts_that_never_end_stop_the_run_at_the_drain_limit() {
    // Absurd handle times (about 30 000 years) neither overflow nor hang: the run stops 24 h
    // after the last arrival, with the contacts answered but never finished.
    let mut sc = Scenario::day(5, 1.0);
    for s in &mut sc.streams {
        s.handle = sim::Dist::LogNormal { mean: 1e12, cv: 3.0 };
    }
    let report = sim::run(&sc).unwrap();
    assert!(report.end <= 25.0 * 3600.0, "{}", report.end);
    let handled: u64 = report.streams.iter().map(|s| s.handled).sum();
    let handle: f64 = report.streams.iter().map(|s| s.total_handle).sum();
    assert!(handled > 0 && handle == 0.0, "{handled} answered, {handle} s of finished work");
}
