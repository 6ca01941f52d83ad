//! Model-based test of the server core (issue 5), in the style of firezone's tunnel tests: a
//! reference model (`reference.rs`) generates random transitions from several users — logins
//! with right and wrong passwords, a sign-up with an acceptable or a refused password, a
//! connection that stalls at the password prompt until the login timeout closes it, logouts,
//! dropped connections, `MSG`, `EDT`, `DLT`, `PVT`, `BLK`, `UNB`, `RDM`, `ATU`, `RCU` — plus
//! `Tick`s that move the clock (past lockouts, login timeouts and `RCU` windows too),
//! `Restart`s that crash the server and start it from its folder, and graceful `Shutdown`s
//! that log everyone out first. The real core (`sut.rs`) must give the same reply
//! codes, push the same events to the same users, list the same lines, keep the same board,
//! inbox, blocks, accounts and user log, and hold in its folder what a restarted server would
//! read back as the same state.
//!
//! 256 cases of up to 80 transitions; `HUDDLE_SOAK=n` runs 20·n times as many.

mod reference;
mod sut;

use proptest::test_runner::Config;
use proptest_state_machine::prop_state_machine;
use sut::ServerAgainstModel;

fn cases() -> u32 {
    let soak = huddle_sim_tests::sim::soak() as u32;
    if soak == 0 { 256 } else { 256 * 20 * soak }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(),
        max_shrink_iters: 20_000,
        ..Config::default()
    })]

    #[test]
    fn the_server_agrees_with_the_model_on_replies_events_and_files(
        sequential 1..80 => ServerAgainstModel
    );
}
