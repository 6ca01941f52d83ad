//! Everything that can happen to a client core, as one type: what a driver hands to
//! [`super::Client::handle_input`].

use std::net::SocketAddr;

use bytes::Bytes;

use super::output::{FileProblem, FileResult};
use crate::transfer::TransferId;

/// One input to the client core, from whichever thread, task or socket noticed it.
///
/// Why one enum: every driver (std, smol, the turmoil host) waits its own way, but then
/// hands what it got through the same door, so the rules that follow an input — such as
/// running the timers that are due — are written once, in the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes arrived from the server.
    ServerBytes(Bytes),
    /// The server closed the connection (or it broke).
    ServerClosed,
    /// The user typed this line (without its line ending) in answer to a prompt.
    UserLine(String),
    /// User input ended (end of file on a pipe, Ctrl-D at a terminal).
    InputClosed,
    /// A datagram arrived on the client's UDP socket.
    Datagram {
        /// Who sent it.
        from: SocketAddr,
        /// Its bytes.
        bytes: Bytes,
    },
    /// Several datagrams from one sender, as one receive call returned them (UDP GRO):
    /// `stride`-sized datagrams back to back, the last possibly shorter. The core splits
    /// them without copying and handles them as one input (the timers and the outputs run
    /// once for the lot).
    Datagrams {
        /// Who sent them.
        from: SocketAddr,
        /// The datagrams.
        bytes: Bytes,
        /// Size of each datagram but the last (0: one datagram).
        stride: usize,
    },
    /// The driver's answer to [`super::ClientOutput::InspectFile`].
    Inspected(Result<u64, FileProblem>),
    /// The driver's answer to a [`super::FileOp`] of transfer `id`.
    File {
        /// The transfer.
        id: TransferId,
        /// What happened.
        result: FileResult,
    },
    /// The user's answer about an incoming upload, from a UI's own control (a line `y`, `n`,
    /// `ACCEPT` or `DECLINE` comes as [`Input::UserLine`] and means the same).
    Decision {
        /// The download asked about.
        id: TransferId,
        /// Take it (or decline it).
        accept: bool,
    },
    /// The user wants out now, whatever is pending (a terminal's second Ctrl-C while no
    /// prompt is open): the core cancels the transfers, telling their peers, and exits.
    Interrupt,
    /// Nothing arrived: the wait for [`super::Client::poll_timeout`] ended (a spurious one
    /// is harmless).
    Timeout,
}
