//! A small tokio driver of the huddle core for turmoil simulations (see issue 5).
//!
//! turmoil runs tokio only, so this crate carries its own driver around the Sans-IO core —
//! which is also the proof that the core needs no particular runtime. Everything here moves
//! bytes, records and time; nothing decides anything (a decision here would be a bug).
//!
//! - [`clock`]: the one clock value, derived from turmoil's simulated time, never `std::time`;
//! - [`disk`]: an in-memory data folder that survives a host crash only through records that
//!   were "fsynced", and may keep a torn tail of those that were not;
//! - [`server_host`]: the server run loop over `turmoil::net` (accept, read, feed, drain,
//!   group commit, write), restartable because a host is a closure;
//! - [`client_host`]: a scripted user in front of the client core, with an optional UDP side
//!   whose outgoing datagrams pass a seeded lossy path (the core's `netem`) and whose file
//!   operations go to an in-memory folder;
//! - [`exchanges`]: a probe logging each line the server handled, when, and its reply codes;
//! - [`trace`]: every observable event with its simulated time, to compare two runs;
//! - [`sim`]: seeded builders, seed lists (`HUDDLE_SIM_SEED`, `HUDDLE_SOAK`) and the seed
//!   report on failure;
//! - [`rng`]: a tiny seeded generator for the scripts' choices;
//! - [`tls`]: the simulated server's two fixed certificates;
//! - [`views`]: what scripts read out of reply texts (an `RDM` listing, a post's number).

pub mod client_host;
pub mod clock;
pub mod disk;
pub mod exchanges;
pub mod rng;
pub mod server_host;
pub mod sim;
pub mod tls;
pub mod trace;
pub mod views;
