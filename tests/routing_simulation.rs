//! The contact-center simulation (examples/simulate) against queueing theory.

#[path = "../examples/simulate/sim.rs"]
mod sim;
