//! A seeded contact-center simulation driving the real router.
//!
//! ```text
//! cargo run --release --example simulate                      # a 10-hour multichannel day
//! cargo run --release --example simulate -- --seed 7 --hours 4
//! cargo run --release --example simulate -- --mmc 96 12 10    # M/M/c beside Erlang C
//! cargo run --release --example simulate -- --mmc 19.2 12 2 --customers 600000 --replications 8
//! ```
//!
//! The logic lives in `sim.rs`, which the `routing_simulation` test includes too.

mod sim;

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "\
usage: simulate [--seed N] [--hours H]
       simulate --mmc LAMBDA MU C [--seed N] [--customers N] [--warmup N] [--batches B] [--target SECS]
                                 [--replications R]

  --seed N         seed of every random number (default 1)
  --hours H        hours of arrivals in the day (default 10)
  --mmc λ μ c      single-skill M/M/c: λ arrivals/h, μ services/h per agent, c agents;
                   prints the simulated figures beside Erlang C's
  --customers N    M/M/c contacts measured per replication (default 200000)
  --warmup N       M/M/c contacts simulated before measuring (default 10000)
  --batches B      batches for the standard errors (default 20)
  --target SECS    service-level threshold T (default 20)
  --replications R independent M/M/c runs (seeds N, N+1, ...) in parallel, pooled (default 1)";

enum Mode {
    Day { seed: u64, hours: f64 },
    Mmc(sim::MmcConfig),
}

fn value<T: std::str::FromStr>(args: &[String], i: usize, flag: &str) -> Result<T, String> {
    let raw = args.get(i).ok_or_else(|| format!("{flag} needs a value"))?;
    raw.parse().map_err(|_| format!("{flag}: cannot read {raw:?} as a number"))
}

fn parse(args: &[String]) -> Result<Mode, String> {
    let (mut seed, mut hours) = (1u64, None::<f64>);
    let mut mmc: Option<(f64, f64, u32)> = None;
    let (mut customers, mut warmup, mut batches, mut target, mut replications) = (None, None, None, None, None);
    let mut i = 0;
    while let Some(flag) = args.get(i) {
        match flag.as_str() {
            "--seed" => seed = value(args, i + 1, flag)?,
            "--hours" => hours = Some(value(args, i + 1, flag)?),
            "--customers" => customers = Some(value(args, i + 1, flag)?),
            "--warmup" => warmup = Some(value(args, i + 1, flag)?),
            "--batches" => batches = Some(value(args, i + 1, flag)?),
            "--target" => target = Some(value(args, i + 1, flag)?),
            "--replications" => replications = Some(value(args, i + 1, flag)?),
            "--mmc" => {
                mmc = Some((value(args, i + 1, flag)?, value(args, i + 2, flag)?, value(args, i + 3, flag)?));
                i += 2;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 2;
    }
    let Some((lambda, mu, c)) = mmc else {
        if customers.is_some() || warmup.is_some() || batches.is_some() || target.is_some() || replications.is_some() {
            return Err("--customers, --warmup, --batches, --target and --replications belong to --mmc".into());
        }
        return Ok(Mode::Day { seed, hours: hours.unwrap_or(10.0) });
    };
    if hours.is_some() {
        return Err("--hours belongs to the day; --mmc runs for --customers contacts".into());
    }
    let mut config = sim::MmcConfig::new(seed, lambda, mu, c);
    config.customers = customers.unwrap_or(config.customers);
    config.warmup = warmup.unwrap_or(config.warmup);
    config.batches = batches.unwrap_or(config.batches);
    config.answer_target = target.unwrap_or(config.answer_target);
    config.replications = replications.unwrap_or(config.replications);
    Ok(Mode::Mmc(config))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse(&args) {
        Ok(mode) => mode,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    let started = std::time::Instant::now();
    let result = match mode {
        Mode::Day { seed, hours } => sim::run(&sim::Scenario::day(seed, hours)).map(|r| r.to_string()),
        Mode::Mmc(config) => sim::run_mmc(config).map(|r| r.to_string()),
    };
    match result {
        Ok(text) => {
            let seconds = started.elapsed().as_secs_f64();
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{text}\n\n(simulated in {seconds:.1} s of wall time)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
