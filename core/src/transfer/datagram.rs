//! The versioned binary datagram format of a transfer, sealed and opened in one place.
//!
//! ```text
//! 0      2       3      4                 12       20               (28 for Data)
//! | "HU" | ver=2 | kind | transfer id u64 | pn u64 | [offset u64] | sealed body | tag (16) |
//! ```
//!
//! All integers are big-endian. The header (and a `Data` datagram's file offset) travels in
//! clear, as the AEAD's associated data: a client routes a datagram by its transfer id and
//! picks the key by its kind before opening it. The body is AES-256-GCM under the key of its
//! kind's class (see [`keys`](super::keys)) with the packet number `pn` as the nonce, so the
//! bytes on the wire reveal neither the file nor its name; the tag authenticates header and
//! body together, so a forged, altered or foreign datagram never reaches the state machines.
//! Each side numbers the datagrams it seals, per key, from 0 and never reuses a number.
//!
//! Handshake class (keys from the transfer's secret):
//! - `Hello` (sender → receiver): X25519 public key (32), file size u64, payload size u32,
//!   protection u8 (0 encrypted, 1 clear for benchmarks).
//! - `Welcome` (receiver → sender): X25519 public key (32), resume block size u64, block
//!   count u16, then that many block CVs (32 each): the receiver's resume offer, none if 0.
//! - `Hold` (either way): reason u8. "Heard you; wait": the audience is deciding, or a side is
//!   checking a partial file. Keeps the other side from timing out.
//! - `Abort`: reason code u8.
//! - `Challenge` (receiver → a new sender address): token u64. Data from an address other
//!   than the one the server named moves the receiver's answers there only after the
//!   sender answers the challenge from that address.
//! - `Response` (sender → receiver): the token of the challenge it answers.
//!
//! Session class (keys from the X25519 exchange, see `keys`):
//! - `Start` (sender → receiver): the offset the file is sent from (0, or where a resume
//!   starts).
//! - `Data`: the file bytes at the header's offset (the rest of the body).
//! - `Fin`: file size u64, BLAKE3 hash of the whole file (32 bytes).
//! - `Ack` (receiver → sender): ack delay ms u16, cumulative offset u64 (every byte below is
//!   held), window end u64 (no byte at or beyond may be sent), range count u16, then that
//!   many packet-number ranges `first u64, last u64` (inclusive, highest first).
//! - `Done`: file size u64; the receiver verified the hash and kept the file.

use bytes::{BufMut, Bytes, BytesMut};
use nom::Parser;
use nom::bytes::complete::take;
use nom::combinator::all_consuming;
use nom::multi::count;
use nom::number::complete::{be_u8, be_u16, be_u32, be_u64};

use super::keys::{KeyPair, PUBLIC_KEY_LEN, Protection};
use super::tree::Cv;
use super::{HASH_LEN, MAX_DATAGRAM, PeerReason, TransferId};

pub use super::keys::TAG_LEN;

/// First two bytes of every datagram: rejects unrelated traffic cheaply.
pub const MAGIC: [u8; 2] = *b"HU";
/// The format version this code writes and reads.
pub const VERSION: u8 = 2;
/// Magic, version, kind, transfer id and packet number.
pub const HEADER_LEN: usize = 20;
/// The header of a `Data` datagram: the common header and the file offset.
pub const DATA_HEADER_LEN: usize = HEADER_LEN + 8;
/// Smallest datagram size a configuration may ask for (room for a useful ACK).
pub const MIN_DATAGRAM: usize = 512;
/// Most SACK ranges one ACK carries, whatever the datagram size.
pub const MAX_ACK_RANGES: usize = 128;
/// Most block CVs one resume offer carries, whatever the datagram size.
pub const MAX_OFFER_BLOCKS: usize = 64;
const ACK_FIXED_LEN: usize = 2 + 8 + 8 + 2;
const WELCOME_FIXED_LEN: usize = PUBLIC_KEY_LEN + 8 + 2;

/// Payload bytes in a data datagram of at most `max_datagram` bytes.
pub fn payload_capacity(max_datagram: usize) -> usize {
    max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM) - DATA_HEADER_LEN - TAG_LEN
}

/// How many SACK ranges fit in an ACK of at most `max_datagram` bytes.
pub fn ack_range_capacity(max_datagram: usize) -> usize {
    let room =
        max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM) - HEADER_LEN - TAG_LEN - ACK_FIXED_LEN;
    (room / 16).min(MAX_ACK_RANGES)
}

/// How many block CVs fit in a `Welcome` of at most `max_datagram` bytes.
pub fn offer_capacity(max_datagram: usize) -> usize {
    let room =
        max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM) - HEADER_LEN - TAG_LEN - WELCOME_FIXED_LEN;
    (room / 32).min(MAX_OFFER_BLOCKS)
}

/// Why bytes are not a datagram of this transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// Shorter than a header and a tag.
    #[error("datagram too short to be a huddle transfer datagram")]
    TooShort,
    /// Not starting with the huddle magic: unrelated traffic.
    #[error("not a huddle transfer datagram")]
    BadMagic,
    /// A version this build does not speak; both peers should run the same release.
    #[error("transfer datagram version {0} is not supported (this build speaks version 2)")]
    UnsupportedVersion(u8),
    /// The tag does not match: tampered with, corrupted, or not sealed with this transfer's
    /// keys.
    #[error("datagram failed authentication (tampered with, corrupted, stale or forged)")]
    Unauthentic,
    /// A session datagram before the keys are agreed: it cannot be authenticated yet.
    #[error("datagram arrived before the keys to open it")]
    NoKey,
    /// A kind this version does not know.
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    /// Authentic but its body does not parse.
    #[error("malformed datagram body")]
    Malformed,
}

/// A selective acknowledgement: what the receiver holds and how much more it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// How long the receiver held this ACK back after the newest packet it acknowledges (ms);
    /// subtracted from RTT samples.
    pub ack_delay_ms: u16,
    /// Every file byte below this offset has been received: written, or held by the receiver
    /// until its block is whole (the sender need not keep it any more).
    pub cum_offset: u64,
    /// Flow control: the sender must not send bytes at or beyond this offset.
    pub window_end: u64,
    /// Received packet numbers, as inclusive `(first, last)` ranges, highest first.
    pub ranges: Vec<(u64, u64)>,
}

/// What a receiver already holds of the file, offered for resuming: the CVs of its first
/// `cvs.len()` blocks of `block` bytes each (see `resume`). No offer: `block` 0, no CVs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// Bytes per offered block: a power of two, a multiple of the hashing block.
    pub block: u64,
    /// The CV of each block, in file order.
    pub cvs: Vec<Cv>,
}

impl Offer {
    /// Bytes the offer covers.
    pub fn len(&self) -> u64 {
        self.block.saturating_mul(self.cvs.len() as u64)
    }

    /// Whether nothing is offered.
    pub fn is_empty(&self) -> bool {
        self.cvs.is_empty()
    }
}

/// Why a side asks the other to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// The audience is being asked whether to accept the file.
    Asking,
    /// The receiver is checking the partial file it would resume.
    CheckingPart,
    /// The sender is checking the receiver's resume offer against its file.
    CheckingOffer,
    /// A reason this version does not know (waiting all the same).
    Other(u8),
}

impl HoldReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            HoldReason::Asking => 1,
            HoldReason::CheckingPart => 2,
            HoldReason::CheckingOffer => 3,
            HoldReason::Other(c) => c,
        }
    }

    /// The reason of a wire code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => HoldReason::Asking,
            2 => HoldReason::CheckingPart,
            3 => HoldReason::CheckingOffer,
            c => HoldReason::Other(c),
        }
    }
}

/// What a datagram says, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Sender → receiver: "I am about to send a file of this size in payloads of this size;
    /// here is my half of the key exchange".
    Hello {
        /// The sender's X25519 public key for this transfer.
        public: [u8; PUBLIC_KEY_LEN],
        /// Size of the whole file in bytes.
        file_size: u64,
        /// Payload bytes per data datagram the sender will use.
        payload_size: u32,
        /// How the sender will protect the file's datagrams.
        protection: Protection,
    },
    /// Receiver → sender: "go ahead; here is my half of the key exchange, and what I hold".
    Welcome {
        /// The receiver's X25519 public key for this transfer.
        public: [u8; PUBLIC_KEY_LEN],
        /// What the receiver already holds, for resuming.
        offer: Offer,
    },
    /// Either way: "I heard you; wait".
    Hold {
        /// Why.
        reason: HoldReason,
    },
    /// Sender → receiver: the file comes from this offset on.
    Start {
        /// Where sending starts (0, or the end of the verified part of a resume offer).
        offset: u64,
    },
    /// Sender → receiver: file bytes at an offset.
    Data {
        /// Where in the file the payload goes.
        offset: u64,
        /// The file bytes.
        payload: Bytes,
    },
    /// Sender → receiver: everything was sent; here is the hash to check it against.
    Fin {
        /// Size of the whole file in bytes.
        file_size: u64,
        /// BLAKE3 of the whole file.
        hash: [u8; HASH_LEN],
    },
    /// Receiver → sender: selective acknowledgement and flow control.
    Ack(Ack),
    /// Receiver → sender: the file was verified and kept.
    Done {
        /// Size of the file kept, for the sender to double-check.
        file_size: u64,
    },
    /// Either way: I gave up, for this reason.
    Abort {
        /// Why.
        reason: PeerReason,
    },
    /// Receiver → a new sender address: prove you are the sender by answering from there.
    Challenge {
        /// Echoed in the [`Body::Response`].
        token: u64,
    },
    /// Sender → receiver: the answer to a [`Body::Challenge`].
    Response {
        /// The challenge's token.
        token: u64,
    },
}

/// Which keys protect a kind of datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Keys from the transfer secret: the exchange before the peers share a key.
    Handshake,
    /// Keys from the X25519 exchange: everything about the file.
    Session,
}

/// The kind byte of a datagram: which [`Body`] follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`Body::Hello`].
    Hello,
    /// [`Body::Data`].
    Data,
    /// [`Body::Fin`].
    Fin,
    /// [`Body::Ack`].
    Ack,
    /// [`Body::Done`].
    Done,
    /// [`Body::Abort`].
    Abort,
    /// [`Body::Challenge`].
    Challenge,
    /// [`Body::Response`].
    Response,
    /// [`Body::Welcome`].
    Welcome,
    /// [`Body::Hold`].
    Hold,
    /// [`Body::Start`].
    Start,
}

impl Kind {
    /// The byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Kind::Hello => 1,
            Kind::Data => 2,
            Kind::Fin => 3,
            Kind::Ack => 4,
            Kind::Done => 5,
            Kind::Abort => 6,
            Kind::Challenge => 7,
            Kind::Response => 8,
            Kind::Welcome => 9,
            Kind::Hold => 10,
            Kind::Start => 11,
        }
    }

    /// The kind of a wire byte, if this version knows it.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Kind::Hello,
            2 => Kind::Data,
            3 => Kind::Fin,
            4 => Kind::Ack,
            5 => Kind::Done,
            6 => Kind::Abort,
            7 => Kind::Challenge,
            8 => Kind::Response,
            9 => Kind::Welcome,
            10 => Kind::Hold,
            11 => Kind::Start,
            _ => return None,
        })
    }

    /// Which keys protect this kind.
    pub fn class(self) -> Class {
        match self {
            Kind::Hello
            | Kind::Welcome
            | Kind::Hold
            | Kind::Abort
            | Kind::Challenge
            | Kind::Response => Class::Handshake,
            Kind::Start | Kind::Data | Kind::Fin | Kind::Ack | Kind::Done => Class::Session,
        }
    }

    fn header_len(self) -> usize {
        if self == Kind::Data {
            DATA_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
}

impl Body {
    /// Which kind of datagram carries this body.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Hello { .. } => Kind::Hello,
            Body::Welcome { .. } => Kind::Welcome,
            Body::Hold { .. } => Kind::Hold,
            Body::Start { .. } => Kind::Start,
            Body::Data { .. } => Kind::Data,
            Body::Fin { .. } => Kind::Fin,
            Body::Ack(_) => Kind::Ack,
            Body::Done { .. } => Kind::Done,
            Body::Abort { .. } => Kind::Abort,
            Body::Challenge { .. } => Kind::Challenge,
            Body::Response { .. } => Kind::Response,
        }
    }

    /// Bytes of the body in clear (what is sealed).
    fn len(&self) -> usize {
        match self {
            Body::Hello { .. } => PUBLIC_KEY_LEN + 8 + 4 + 1,
            Body::Welcome { offer, .. } => WELCOME_FIXED_LEN + 32 * offer.cvs.len(),
            Body::Hold { .. } | Body::Abort { .. } => 1,
            Body::Start { .. } | Body::Done { .. } => 8,
            Body::Data { payload, .. } => payload.len(),
            Body::Fin { .. } => 8 + HASH_LEN,
            Body::Ack(a) => ACK_FIXED_LEN + 16 * a.ranges.len().min(usize::from(u16::MAX)),
            Body::Challenge { .. } | Body::Response { .. } => 8,
        }
    }

    fn put(&self, buf: &mut BytesMut) {
        match self {
            Body::Hello {
                public,
                file_size,
                payload_size,
                protection,
            } => {
                buf.put_slice(public);
                buf.put_u64(*file_size);
                buf.put_u32(*payload_size);
                buf.put_u8(protection.code());
            }
            Body::Welcome { public, offer } => {
                buf.put_slice(public);
                buf.put_u64(offer.block);
                let n = offer.cvs.len().min(usize::from(u16::MAX));
                buf.put_u16(n as u16);
                for cv in &offer.cvs[..n] {
                    buf.put_slice(cv);
                }
            }
            Body::Hold { reason } => buf.put_u8(reason.code()),
            Body::Start { offset } => buf.put_u64(*offset),
            Body::Data { payload, .. } => buf.put_slice(payload),
            Body::Fin { file_size, hash } => {
                buf.put_u64(*file_size);
                buf.put_slice(hash);
            }
            Body::Ack(ack) => {
                buf.put_u16(ack.ack_delay_ms);
                buf.put_u64(ack.cum_offset);
                buf.put_u64(ack.window_end);
                let n = ack.ranges.len().min(usize::from(u16::MAX));
                buf.put_u16(n as u16);
                for &(first, last) in &ack.ranges[..n] {
                    buf.put_u64(first);
                    buf.put_u64(last);
                }
            }
            Body::Done { file_size } => buf.put_u64(*file_size),
            Body::Abort { reason } => buf.put_u8(reason.code()),
            Body::Challenge { token } | Body::Response { token } => buf.put_u64(*token),
        }
    }
}

/// A datagram of a transfer: which transfer, its packet number, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The transfer it belongs to.
    pub id: TransferId,
    /// Its packet number: unique per sender and key, the nonce of its seal.
    pub pn: u64,
    /// What it says.
    pub body: Body,
}

/// What a datagram's clear header says (not yet authenticated when peeked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The kind of body that follows.
    pub kind: Kind,
    /// The transfer.
    pub id: TransferId,
    /// The packet number (the nonce).
    pub pn: u64,
    /// A `Data` datagram's file offset (0 for other kinds).
    pub offset: u64,
}

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

fn malformed(_: NomErr<'_>) -> DatagramError {
    DatagramError::Malformed
}

/// Read the clear header of a datagram without authenticating it: to route it to its
/// transfer and pick the key that will.
pub fn peek(bytes: &[u8]) -> Result<Header, DatagramError> {
    if bytes.len() < HEADER_LEN + TAG_LEN {
        return Err(DatagramError::TooShort);
    }
    let (rest, (magic, version, kind, id, pn)) = (take(2usize), be_u8, be_u8, be_u64, be_u64)
        .parse(bytes)
        .map_err(|_: NomErr<'_>| DatagramError::TooShort)?;
    if magic != MAGIC {
        return Err(DatagramError::BadMagic);
    }
    if version != VERSION {
        return Err(DatagramError::UnsupportedVersion(version));
    }
    let kind = Kind::from_code(kind).ok_or(DatagramError::UnknownKind(kind))?;
    let offset = if kind == Kind::Data {
        if bytes.len() < DATA_HEADER_LEN + TAG_LEN {
            return Err(DatagramError::TooShort);
        }
        be_u64.parse(rest).map_err(malformed)?.1
    } else {
        0
    };
    Ok(Header {
        kind,
        id: TransferId(id),
        pn,
        offset,
    })
}

/// The longest a `Hello` can be on the wire (its body is a key and a few sizes): what a
/// client keeps of one that arrived before its transfer was known.
pub const MAX_HELLO_LEN: usize = 256;

/// Read the transfer id of a datagram without authenticating it, to pick the machine (and so
/// the keys) that will.
pub fn peek_transfer_id(bytes: &[u8]) -> Result<TransferId, DatagramError> {
    peek(bytes).map(|h| h.id)
}

/// Bytes a datagram pool hands out before it takes a new block.
const POOL_BLOCK: usize = 1 << 20;

/// The length of `d` on the wire.
pub fn sealed_len(d: &Datagram) -> usize {
    d.body.kind().header_len() + d.body.len() + TAG_LEN
}

/// Render `d` and seal it with `keys` (its own direction), into `pool`: a block the encoder
/// reuses, from which the datagram is split off, so sealing costs no allocation per datagram,
/// only one per block (a block is freed once every datagram cut from it is dropped). The body
/// is encrypted in place where it was rendered.
pub(crate) fn seal(d: &Datagram, keys: &KeyPair, pool: &mut BytesMut) -> Bytes {
    seal_mut(d, keys, pool).freeze()
}

/// Make sure `pool` has room for `len` more bytes in its current block, taking a new block if
/// not: datagrams sealed next (up to `len` bytes together) then lie back to back in memory,
/// so [`BytesMut::unsplit`] joins them into one batch without copying.
///
/// A block whose datagrams were all dropped (sent) meanwhile is used again from its start
/// rather than replaced: a fast sender then seals into the same few pages instead of
/// faulting in a fresh megabyte every megabyte it sends.
pub(crate) fn reserve_pool(pool: &mut BytesMut, len: usize) {
    if pool.capacity() - pool.len() < len && !pool.try_reclaim(len) {
        *pool = BytesMut::with_capacity(POOL_BLOCK.max(len));
    }
}

/// [`seal`], leaving the datagram mutable: a sender joins datagrams sealed one after the
/// other from the same block into one batch (they are contiguous, so joining is free).
pub(crate) fn seal_mut(d: &Datagram, keys: &KeyPair, pool: &mut BytesMut) -> BytesMut {
    let len = sealed_len(d);
    reserve_pool(pool, len);
    let start = pool.len();
    let kind = d.body.kind();
    pool.put_slice(&MAGIC);
    pool.put_u8(VERSION);
    pool.put_u8(kind.code());
    pool.put_u64(d.id.0);
    pool.put_u64(d.pn);
    if let Body::Data { offset, .. } = &d.body {
        pool.put_u64(*offset);
    }
    let body_start = pool.len();
    d.body.put(pool);
    let (header, body) = pool[start..].split_at_mut(body_start - start);
    let tag = keys.seal(d.pn, header, body);
    pool.put_slice(&tag);
    pool.split_to(pool.len()).split_off(start)
}

/// Open `bytes` with `keys` (the peer's direction): the plaintext body is appended to `dst`
/// (decrypted in place there) and the authenticated header returned. On any failure `dst` is
/// as it was: nothing unauthenticated ever stays in it.
pub(crate) fn open_into(
    bytes: &[u8],
    keys: &KeyPair,
    dst: &mut BytesMut,
) -> Result<Header, DatagramError> {
    let header = peek(bytes)?;
    let start = dst.len();
    dst.extend_from_slice(sealed_body(&header, bytes));
    if let Err(e) = open_copied(&header, bytes, keys, &mut dst[start..]) {
        dst.truncate(start);
        return Err(e);
    }
    Ok(header)
}

/// Open the `Data` datagram `bytes`, whose header `header` was peeked from it, with `keys`
/// straight into `slot`, exactly its payload's
/// length (the receiver's place for it in the file): copied there once and decrypted in
/// place. On failure the slot holds bytes nobody vouched for: the caller must not use them
/// (the receive buffer marks a slot filled only after this succeeded).
pub(crate) fn open_data_into(
    header: &Header,
    bytes: &[u8],
    keys: &KeyPair,
    slot: &mut [u8],
) -> Result<(), DatagramError> {
    let sealed = sealed_body(header, bytes);
    if header.kind != Kind::Data || sealed.len() != slot.len() {
        return Err(DatagramError::Malformed);
    }
    slot.copy_from_slice(sealed);
    open_copied(header, bytes, keys, slot)
}

/// The sealed body of `bytes`, between its header and its tag (`peek` checked both fit).
fn sealed_body<'a>(header: &Header, bytes: &'a [u8]) -> &'a [u8] {
    &bytes[header.kind.header_len()..bytes.len() - TAG_LEN]
}

/// Open in place the sealed body of `bytes` that was copied into `body`, against the header
/// and tag of `bytes`: the one way every datagram is opened, into a buffer or straight into
/// its slot in the file.
fn open_copied(
    header: &Header,
    bytes: &[u8],
    keys: &KeyPair,
    body: &mut [u8],
) -> Result<(), DatagramError> {
    let head = &bytes[..header.kind.header_len()];
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&bytes[bytes.len() - TAG_LEN..]);
    keys.open(header.pn, head, body, &tag)
        .map_err(|_| DatagramError::Unauthentic)
}

/// Parse the plaintext `body` of an authenticated datagram with this `header`. A `Data`
/// payload is `body` itself, without a copy.
pub(crate) fn parse_body(header: &Header, body: Bytes) -> Result<Body, DatagramError> {
    let b = &body[..];
    Ok(match header.kind {
        Kind::Hello => {
            let (_, (public, file_size, payload_size, protection)) =
                all_consuming((take(PUBLIC_KEY_LEN), be_u64, be_u32, be_u8))
                    .parse(b)
                    .map_err(malformed)?;
            Body::Hello {
                public: key32(public),
                file_size,
                payload_size,
                protection: Protection::from_code(protection).ok_or(DatagramError::Malformed)?,
            }
        }
        Kind::Welcome => {
            let (rest, (public, block, n)) = (take(PUBLIC_KEY_LEN), be_u64, be_u16)
                .parse(b)
                .map_err(malformed)?;
            // More blocks than any receiver offers: bounded work per datagram.
            if usize::from(n) > MAX_OFFER_BLOCKS || rest.len() != usize::from(n) * 32 {
                return Err(DatagramError::Malformed);
            }
            Body::Welcome {
                public: key32(public),
                offer: Offer {
                    block,
                    cvs: rest.chunks_exact(32).map(key32).collect(),
                },
            }
        }
        Kind::Hold => {
            let (_, code) = all_consuming(be_u8).parse(b).map_err(malformed)?;
            Body::Hold {
                reason: HoldReason::from_code(code),
            }
        }
        Kind::Start => {
            let (_, offset) = all_consuming(be_u64).parse(b).map_err(malformed)?;
            Body::Start { offset }
        }
        Kind::Data => Body::Data {
            offset: header.offset,
            payload: body,
        },
        Kind::Fin => {
            let (_, (file_size, h)) = all_consuming((be_u64, take(HASH_LEN)))
                .parse(b)
                .map_err(malformed)?;
            let mut hash = [0u8; HASH_LEN];
            hash.copy_from_slice(h);
            Body::Fin { file_size, hash }
        }
        Kind::Ack => {
            let (rest, (ack_delay_ms, cum_offset, window_end, n)) =
                (be_u16, be_u64, be_u64, be_u16)
                    .parse(b)
                    .map_err(malformed)?;
            // More ranges than any receiver sends: bounded work per datagram.
            if usize::from(n) > MAX_ACK_RANGES || rest.len() != usize::from(n) * 16 {
                return Err(DatagramError::Malformed);
            }
            let (_, ranges) = all_consuming(count((be_u64, be_u64), usize::from(n)))
                .parse(rest)
                .map_err(malformed)?;
            if ranges.iter().any(|&(first, last)| first > last) {
                return Err(DatagramError::Malformed);
            }
            Body::Ack(Ack {
                ack_delay_ms,
                cum_offset,
                window_end,
                ranges,
            })
        }
        Kind::Done => {
            let (_, file_size) = all_consuming(be_u64).parse(b).map_err(malformed)?;
            Body::Done { file_size }
        }
        Kind::Abort => {
            let (_, code) = all_consuming(be_u8).parse(b).map_err(malformed)?;
            Body::Abort {
                reason: PeerReason::from_code(code),
            }
        }
        Kind::Challenge => {
            let (_, token) = all_consuming(be_u64).parse(b).map_err(malformed)?;
            Body::Challenge { token }
        }
        Kind::Response => {
            let (_, token) = all_consuming(be_u64).parse(b).map_err(malformed)?;
            Body::Response { token }
        }
    })
}

fn key32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}

/// Open and parse a whole datagram into a buffer of its own (tests).
#[cfg(test)]
pub(crate) fn open(bytes: &[u8], keys: &KeyPair) -> Result<Datagram, DatagramError> {
    let mut dst = BytesMut::new();
    let header = open_into(bytes, keys, &mut dst)?;
    let body = parse_body(&header, dst.freeze())?;
    Ok(Datagram {
        id: header.id,
        pn: header.pn,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::super::TransferSecret;
    use super::super::keys::{EphemeralKey, Side, Transcript};
    use super::*;
    use proptest::prelude::*;

    /// Session keys of both sides, as a handshake would derive them.
    pub(crate) fn session() -> (KeyPair, KeyPair) {
        let (s, r) = (
            EphemeralKey::from_bytes([1; 32]),
            EphemeralKey::from_bytes([2; 32]),
        );
        let t = Transcript {
            sender_public: s.public(),
            receiver_public: r.public(),
            file_size: 10,
            payload_size: 1408,
        };
        let secret = TransferSecret([7; 32]);
        let id = TransferId(3);
        let p = Protection::Encrypted;
        (
            KeyPair::session(&s, &r.public(), &secret, id, &t, Side::Sender, p).unwrap(),
            KeyPair::session(&r, &s.public(), &secret, id, &t, Side::Receiver, p).unwrap(),
        )
    }

    fn seal_one(d: &Datagram, keys: &KeyPair) -> Bytes {
        seal(d, keys, &mut BytesMut::new())
    }

    fn body_strategy() -> impl Strategy<Value = Body> {
        let cv = any::<[u8; 32]>();
        prop_oneof![
            (any::<[u8; 32]>(), any::<u64>(), any::<u32>(), any::<bool>()).prop_map(
                |(public, file_size, payload_size, clear)| Body::Hello {
                    public,
                    file_size,
                    payload_size,
                    protection: if clear {
                        Protection::Clear
                    } else {
                        Protection::Encrypted
                    },
                }
            ),
            (
                any::<[u8; 32]>(),
                any::<u64>(),
                proptest::collection::vec(cv, 0..=MAX_OFFER_BLOCKS)
            )
                .prop_map(|(public, block, cvs)| Body::Welcome {
                    public,
                    offer: Offer { block, cvs }
                }),
            any::<u8>().prop_map(|c| Body::Hold {
                reason: HoldReason::from_code(c)
            }),
            any::<u64>().prop_map(|offset| Body::Start { offset }),
            (
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..2000)
            )
                .prop_map(|(offset, p)| Body::Data {
                    offset,
                    payload: Bytes::from(p)
                }),
            (any::<u64>(), any::<[u8; 32]>())
                .prop_map(|(file_size, hash)| Body::Fin { file_size, hash }),
            (
                any::<u16>(),
                any::<u64>(),
                any::<u64>(),
                proptest::collection::vec((any::<u64>(), any::<u64>()), 0..=MAX_ACK_RANGES)
            )
                .prop_map(|(ack_delay_ms, cum_offset, window_end, r)| {
                    let ranges = r.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect();
                    Body::Ack(Ack {
                        ack_delay_ms,
                        cum_offset,
                        window_end,
                        ranges,
                    })
                }),
            any::<u64>().prop_map(|file_size| Body::Done { file_size }),
            any::<u8>().prop_map(|c| Body::Abort {
                reason: PeerReason::from_code(c)
            }),
            any::<u64>().prop_map(|token| Body::Challenge { token }),
            any::<u64>().prop_map(|token| Body::Response { token }),
        ]
    }

    proptest! {
        #[test]
        fn seal_then_open_is_identity(id in any::<u64>(), pn in any::<u64>(), body in body_strategy()) {
            let (s, r) = session();
            let d = Datagram { id: TransferId(id), pn, body };
            let bytes = seal_one(&d, &s);
            prop_assert_eq!(bytes.len(), sealed_len(&d));
            prop_assert_eq!(peek_transfer_id(&bytes), Ok(TransferId(id)));
            prop_assert_eq!(open(&bytes, &r), Ok(d));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let (_, r) = session();
            let _ = peek(&bytes);
            let _ = open(&bytes, &r);
        }

        #[test]
        fn an_authentic_header_with_an_arbitrary_body_never_panics(
            kind in 0u8..14,
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            // Seal random bytes as a real peer would: the parser sees real garbage instead of
            // stopping at the tag.
            let (s, r) = session();
            let mut buf = BytesMut::new();
            buf.put_slice(&MAGIC);
            buf.put_u8(VERSION);
            buf.put_u8(kind);
            buf.put_u64(1);
            buf.put_u64(9);
            let head_len = Kind::from_code(kind).map_or(HEADER_LEN, Kind::header_len);
            while buf.len() < head_len {
                buf.put_u8(0);
            }
            buf.put_slice(&body);
            let (head, b) = buf.split_at_mut(head_len);
            let tag = s.seal(9, head, b);
            buf.put_slice(&tag);
            let _ = open(&buf, &r);
        }

        #[test]
        fn any_flipped_bit_is_rejected(body in body_strategy(), bit in any::<usize>()) {
            let (s, r) = session();
            let bytes = seal_one(&Datagram { id: TransferId(3), pn: 1, body }, &s);
            let mut v = bytes.to_vec();
            let i = bit % (v.len() * 8);
            v[i / 8] ^= 1 << (i % 8);
            prop_assert!(open(&v, &r).is_err());
        }
    }

    #[test]
    fn the_payload_is_not_on_the_wire() {
        let (s, r) = session();
        let payload = Bytes::from(b"0123456789abcdef".repeat(80));
        let d = Datagram {
            id: TransferId(1),
            pn: 0,
            body: Body::Data {
                offset: 0,
                payload: payload.clone(),
            },
        };
        let bytes = seal_one(&d, &s);
        assert!(
            !bytes.windows(16).any(|w| w == b"0123456789abcdef"),
            "the payload must be encrypted"
        );
        let mut dst = BytesMut::new();
        let header = open_into(&bytes, &r, &mut dst).unwrap();
        assert_eq!((header.kind, header.offset), (Kind::Data, 0));
        assert_eq!(
            &dst[..],
            &payload[..],
            "opened in place into the caller's buffer"
        );
    }

    #[test]
    fn a_failed_open_leaves_the_buffer_as_it_was() {
        let (s, r) = session();
        let d = Datagram {
            id: TransferId(1),
            pn: 4,
            body: Body::Done { file_size: 5 },
        };
        let mut v = seal_one(&d, &s).to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        let mut dst = BytesMut::from(&b"kept"[..]);
        assert_eq!(open_into(&v, &r, &mut dst), Err(DatagramError::Unauthentic));
        assert_eq!(&dst[..], b"kept");
    }

    #[test]
    fn data_opens_into_its_slot_only_when_authentic_and_of_the_slots_length() {
        let (s, r) = session();
        let payload = Bytes::from(vec![42u8; 1408]);
        let d = Datagram {
            id: TransferId(1),
            pn: 9,
            body: Body::Data {
                offset: 1408,
                payload: payload.clone(),
            },
        };
        let sealed = seal_one(&d, &s);
        let header = peek(&sealed).unwrap();
        let mut slot = vec![0u8; 1408];
        assert_eq!(open_data_into(&header, &sealed, &r, &mut slot), Ok(()));
        assert_eq!(&slot[..], &payload[..]);
        // A slot of another length (a misfit the caller missed) is refused before any copy.
        let mut short = vec![0u8; 1407];
        assert_eq!(
            open_data_into(&header, &sealed, &r, &mut short),
            Err(DatagramError::Malformed)
        );
        assert!(short.iter().all(|&b| b == 0));
        // Any flipped bit: unauthentic.
        let mut v = sealed.to_vec();
        v[DATA_HEADER_LEN + 100] ^= 1;
        assert_eq!(
            open_data_into(&header, &v, &r, &mut slot),
            Err(DatagramError::Unauthentic)
        );
        // A datagram of another kind never lands in a data slot.
        let done = sealed_done(10, &s);
        let h = peek(&done).unwrap();
        let mut any = vec![0u8; done.len() - h.kind.header_len() - TAG_LEN];
        assert_eq!(
            open_data_into(&h, &done, &r, &mut any),
            Err(DatagramError::Malformed)
        );
    }

    /// A sealed `Done` of transfer 1, packet `pn`.
    fn sealed_done(pn: u64, keys: &KeyPair) -> Bytes {
        seal_one(
            &Datagram {
                id: TransferId(1),
                pn,
                body: Body::Done { file_size: 5 },
            },
            keys,
        )
    }

    #[test]
    fn a_datagram_of_another_exchange_is_rejected() {
        let (s, _) = session();
        let other = KeyPair::handshake(&TransferSecret([8; 32]), TransferId(1), Side::Receiver);
        let bytes = sealed_done(0, &s);
        assert_eq!(open(&bytes, &other), Err(DatagramError::Unauthentic));
    }

    #[test]
    fn a_default_data_datagram_fits_a_1500_byte_mtu() {
        let (s, _) = session();
        let payload = payload_capacity(super::super::MTU_DATAGRAM);
        let d = Datagram {
            id: TransferId(1),
            pn: 0,
            body: Body::Data {
                offset: 0,
                payload: Bytes::from(vec![0; payload]),
            },
        };
        assert_eq!(seal_one(&d, &s).len() + 40 + 8, 1500);
    }

    #[test]
    fn an_unknown_version_is_named() {
        let (s, _) = session();
        let mut v = seal_one(
            &Datagram {
                id: TransferId(1),
                pn: 0,
                body: Body::Done { file_size: 0 },
            },
            &s,
        )
        .to_vec();
        v[2] = 1;
        assert_eq!(peek(&v), Err(DatagramError::UnsupportedVersion(1)));
    }
}
