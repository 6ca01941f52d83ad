//! What a driver tells the server core.

use std::net::SocketAddr;

use super::output::ConnId;
use super::passwords::HashDone;
use crate::store::DataFiles;

/// One input, handed to [`super::Server::handle_input`] with the current time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// A client connected from `peer`; the server names the connection (the return value of
    /// `handle_input`) and may refuse it at once (`421` then [`super::Output::Close`]).
    Connected {
        /// Where from.
        peer: SocketAddr,
    },
    /// Bytes arrived on a connection (as they came off the socket: TLS records on an
    /// upgraded connection, which the core opens).
    Bytes {
        /// Which.
        conn: ConnId,
        /// What arrived.
        bytes: &'a [u8],
    },
    /// The driver wrote this many more of a connection's output bytes to its socket.
    Wrote {
        /// Which.
        conn: ConnId,
        /// How many bytes, in the order they were handed out.
        bytes: usize,
    },
    /// A connection ended: the peer closed it, it failed, or the driver carried out a
    /// [`super::Output::Close`] or [`super::Output::Cut`]. Nothing more comes for it.
    Closed {
        /// Which.
        conn: ConnId,
        /// Of the bytes written, how many the peer had not acknowledged when it ended (on
        /// Linux, the socket's `SIOCOUTQ`; 0 where that cannot be known). A private message
        /// whose end lies in them is delivered again at the next login.
        unacked: usize,
    },
    /// A password hash handed out with [`super::Output::Hash`] is done.
    Hashed(HashDone),
    /// Stop: every client is told (`421`), everyone is logged out, every connection closed;
    /// new connections are refused. Keep feeding inputs until [`super::Server::is_finished`].
    Shutdown,
    /// The batch's persist records could not be made durable: the driver carried out none
    /// of the outputs that came after them except [`super::Output::Hash`] and
    /// [`super::Output::Log`], and names here every connection an output it dropped was for.
    /// The core tells those connections why (`421`) and closes them (: what they were sent
    /// last is missing), reloads its state from `files` (the folder re-read: what is on
    /// disk is the truth; `None` if it could not be read) and turns read-only (see
    /// `storage_health`). Hand it in as the very next input.
    StoreFailed {
        /// Why, for the operator and the clients.
        error: String,
        /// The connections whose outputs were dropped (in any order, repeats allowed).
        dropped: Vec<ConnId>,
        /// The data folder as it is now.
        files: Option<&'a DataFiles>,
    },
    /// The records of [`super::Server::poll_probe`] were applied: `None` if they are
    /// durable (read-only mode ends), else why not.
    Probed {
        /// Why the probe failed, if it did.
        error: Option<String>,
    },
    /// Time passed (the wait for [`super::Server::poll_timeout`] ended).
    Timeout,
}
