//! The versioned binary datagram format of a transfer, parsed with nom over [`Bytes`].
//!
//! ```text
//! 0      2       3      4               12                      len-16     len
//! | "HU" | ver=1 | kind | transfer id u64 | body (per kind)     | tag (16) |
//! ```
//!
//! All integers are big-endian. The tag is BLAKE3 in keyed mode over everything before it,
//! keyed by a key derived from the transfer's secret and truncated to 16 bytes: it is both the
//! checksum of the datagram and the proof that it belongs to this transfer. A receiver checks
//! it before parsing the body, so a forged or corrupted datagram never reaches the state
//! machines. The transfer id travels in clear so a client can route before authenticating.
//!
//! In tree mode (see `tree`: payloads are aligned power-of-two leaves of the file's
//! BLAKE3 tree, announced by the `Hello`'s payload size) the tag of a `Data` datagram covers
//! the header, packet number, offset and the payload's BLAKE3 chaining value instead of the
//! payload bytes: still a keyed BLAKE3 over a collision-resistant digest of every byte, but the
//! payload is hashed once for both the tag and the whole-file hash.
//!
//! Bodies:
//! - `Hello` (sender → receiver): file size u64, payload size u32.
//! - `Data`: packet number u64, file offset u64, payload (the rest).
//! - `Fin`: file size u64, BLAKE3 hash of the whole file (32 bytes).
//! - `Ack` (receiver → sender): ack delay ms u16, cumulative offset u64 (every byte below is
//!   held), window end u64 (no byte at or beyond may be sent), range count u16, then that
//!   many packet-number ranges `first u64, last u64` (inclusive, highest first).
//! - `Done`: file size u64; the receiver verified the hash and kept the file.
//! - `Abort`: reason code u8.
//! - `Challenge` (receiver → a new sender address): token u64. Data from an address other
//!   than the one the server named moves the receiver's answers there only after the
//!   sender answers the challenge from that address.
//! - `Response` (sender → receiver): the token of the challenge it answers.

use bytes::{BufMut, Bytes, BytesMut};
use nom::Parser;
use nom::bytes::complete::take;
use nom::combinator::all_consuming;
use nom::multi::count;
use nom::number::complete::{be_u8, be_u16, be_u32, be_u64};

use super::tree::{ChainingValueOf, leaf_cv};
use super::{HASH_LEN, MAX_DATAGRAM, PeerReason, TransferId, TransferSecret};

/// A BLAKE3 chaining value: the hash of a subtree of the file.
pub type ChainingValue = ChainingValueOf;

/// First two bytes of every datagram: rejects unrelated traffic cheaply.
pub const MAGIC: [u8; 2] = *b"HU";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Magic, version, kind and transfer id.
pub const HEADER_LEN: usize = 12;
/// Truncated BLAKE3 tag at the end of every datagram.
pub const TAG_LEN: usize = 16;
/// Packet number and offset in front of a data payload.
pub const DATA_BODY_LEN: usize = 16;
/// Smallest datagram size a configuration may ask for (room for a useful ACK).
pub const MIN_DATAGRAM: usize = 512;
/// Most SACK ranges one ACK carries, whatever the datagram size.
pub const MAX_ACK_RANGES: usize = 128;
const ACK_FIXED_LEN: usize = 2 + 8 + 8 + 2;
const MAC_CONTEXT: &str = "huddle 2026-11 transfer v1 datagram tag";

/// Payload bytes in a data datagram of at most `max_datagram` bytes.
pub fn payload_capacity(max_datagram: usize) -> usize {
    max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM) - HEADER_LEN - DATA_BODY_LEN - TAG_LEN
}

/// How many SACK ranges fit in an ACK of at most `max_datagram` bytes.
pub fn ack_range_capacity(max_datagram: usize) -> usize {
    let room =
        max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM) - HEADER_LEN - TAG_LEN - ACK_FIXED_LEN;
    (room / 16).min(MAX_ACK_RANGES)
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
    #[error("transfer datagram version {0} is not supported (this build speaks version 1)")]
    UnsupportedVersion(u8),
    /// The tag does not match: corrupted, or not keyed with this transfer's secret.
    #[error("datagram failed authentication (corrupted, stale or forged)")]
    BadTag,
    /// Authentic but with an unknown kind.
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    /// Authentic but its body does not parse.
    #[error("malformed datagram body")]
    Malformed,
}

/// The key that tags datagrams of one transfer, derived from its secret.
///
/// Derived rather than used raw so the secret could later key other things (e.g. encryption)
/// without reusing one key for two purposes.
#[derive(Clone)]
pub struct TagKey([u8; 32]);

impl TagKey {
    /// The tag key of the transfer with this secret.
    pub fn derive(secret: &TransferSecret) -> Self {
        Self(blake3::derive_key(MAC_CONTEXT, &secret.0))
    }

    pub(crate) fn tag(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        truncate(blake3::keyed_hash(&self.0, bytes))
    }

    /// The tag of a tree-mode data datagram: its first bytes, then the payload's CV.
    fn tag_with_cv(&self, head: &[u8], cv: &ChainingValue) -> [u8; TAG_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(head);
        h.update(cv);
        truncate(h.finalize())
    }
}

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(..)")
    }
}

fn truncate(hash: blake3::Hash) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&hash.as_bytes()[..TAG_LEN]);
    out
}

/// A selective acknowledgement: what the receiver holds and how much more it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// How long the receiver held this ACK back after the newest packet it acknowledges (ms);
    /// subtracted from RTT samples.
    pub ack_delay_ms: u16,
    /// Every file byte below this offset has been received (and hashed).
    pub cum_offset: u64,
    /// Flow control: the sender must not send bytes at or beyond this offset.
    pub window_end: u64,
    /// Received packet numbers, as inclusive `(first, last)` ranges, highest first.
    pub ranges: Vec<(u64, u64)>,
}

/// What a datagram says, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Sender → receiver: "I am about to send a file of this size in payloads of this size".
    Hello {
        /// Size of the whole file in bytes.
        file_size: u64,
        /// Payload bytes per data datagram the sender will use.
        payload_size: u32,
    },
    /// Sender → receiver: file bytes at an offset.
    Data {
        /// Unique per transmission (a retransmission gets a new one), so ACKs are unambiguous.
        pn: u64,
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
            _ => return None,
        })
    }
}

impl Body {
    /// Which kind of datagram carries this body.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Hello { .. } => Kind::Hello,
            Body::Data { .. } => Kind::Data,
            Body::Fin { .. } => Kind::Fin,
            Body::Ack(_) => Kind::Ack,
            Body::Done { .. } => Kind::Done,
            Body::Abort { .. } => Kind::Abort,
            Body::Challenge { .. } => Kind::Challenge,
            Body::Response { .. } => Kind::Response,
        }
    }
}

/// A datagram of a transfer: which transfer, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The transfer it belongs to.
    pub id: TransferId,
    /// What it says.
    pub body: Body,
}

/// Read the transfer id of a datagram without authenticating it, to pick the machine (and so
/// the key) that will.
pub fn peek_transfer_id(bytes: &[u8]) -> Result<TransferId, DatagramError> {
    if bytes.len() < HEADER_LEN + TAG_LEN {
        return Err(DatagramError::TooShort);
    }
    let (_, (magic, version, _kind, id)) = (take(2usize), be_u8, be_u8, be_u64)
        .parse(bytes)
        .map_err(|_: NomErr<'_>| DatagramError::TooShort)?;
    if magic != MAGIC {
        return Err(DatagramError::BadMagic);
    }
    if version != VERSION {
        return Err(DatagramError::UnsupportedVersion(version));
    }
    Ok(TransferId(id))
}

/// The `Abort` datagram either side sends when it gives up (best effort: the peer also has
/// its own idle timeout).
pub fn encode_abort(id: TransferId, reason: PeerReason, key: &TagKey) -> Bytes {
    encode(
        &Datagram {
            id,
            body: Body::Abort { reason },
        },
        key,
    )
}

/// Render a datagram and tag it with `key`.
pub fn encode(d: &Datagram, key: &TagKey) -> Bytes {
    encode_with(d, key, None)
}

/// Render a datagram; a data datagram in tree mode is tagged over its payload's chaining
/// value `payload_cv` (which the caller computed once for the file hash too).
pub fn encode_with(d: &Datagram, key: &TagKey, payload_cv: Option<&ChainingValue>) -> Bytes {
    let mut buf = BytesMut::with_capacity(encoded_len(&d.body));
    encode_into(d, key, payload_cv, &mut buf)
}

/// Bytes a datagram pool hands out before it takes a new block.
const POOL_BLOCK: usize = 1 << 20;

/// Like [`encode_with`], rendering into `pool`, a block the encoder reuses: the datagram is
/// split off it, so encoding costs no allocation per datagram, only one per block (a block
/// is freed once every datagram cut from it is dropped).
pub(crate) fn encode_pooled(
    d: &Datagram,
    key: &TagKey,
    payload_cv: Option<&ChainingValue>,
    pool: &mut BytesMut,
) -> Bytes {
    let len = encoded_len(&d.body);
    if pool.capacity() - pool.len() < len {
        *pool = BytesMut::with_capacity(POOL_BLOCK.max(len));
    }
    encode_into(d, key, payload_cv, pool)
}

/// Append `d`, tagged, to `buf` and split it off as a datagram.
fn encode_into(
    d: &Datagram,
    key: &TagKey,
    payload_cv: Option<&ChainingValue>,
    buf: &mut BytesMut,
) -> Bytes {
    let start = buf.len();
    buf.put_slice(&MAGIC);
    buf.put_u8(VERSION);
    buf.put_u8(d.body.kind().code());
    buf.put_u64(d.id.0);
    match &d.body {
        Body::Hello {
            file_size,
            payload_size,
        } => {
            buf.put_u64(*file_size);
            buf.put_u32(*payload_size);
        }
        Body::Data {
            pn,
            offset,
            payload,
        } => {
            buf.put_u64(*pn);
            buf.put_u64(*offset);
            buf.put_slice(payload);
        }
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
    let tag = match (&d.body, payload_cv) {
        (Body::Data { .. }, Some(cv)) => {
            key.tag_with_cv(&buf[start..start + HEADER_LEN + DATA_BODY_LEN], cv)
        }
        _ => key.tag(&buf[start..]),
    };
    buf.put_slice(&tag);
    buf.split_to(buf.len()).split_off(start).freeze()
}

fn encoded_len(body: &Body) -> usize {
    let body_len = match body {
        Body::Hello { .. } => 12,
        Body::Data { payload, .. } => DATA_BODY_LEN + payload.len(),
        Body::Fin { .. } => 8 + HASH_LEN,
        Body::Ack(a) => ACK_FIXED_LEN + 16 * a.ranges.len(),
        Body::Done { .. } => 8,
        Body::Abort { .. } => 1,
        Body::Challenge { .. } | Body::Response { .. } => 8,
    };
    HEADER_LEN + body_len + TAG_LEN
}

/// Authenticate `bytes` with `key` and parse them. Data payloads are zero-copy slices of
/// `bytes`.
pub fn decode(bytes: &Bytes, key: &TagKey) -> Result<Datagram, DatagramError> {
    decode_with(bytes, key, None).map(|(d, _)| d)
}

/// Like [`decode`]; in tree mode (`leaf` is the payload size) a data datagram is authenticated
/// through its payload's chaining value, which is returned for the file hash. A payload that
/// cannot be a leaf at its offset is refused before any hashing.
pub fn decode_with(
    bytes: &Bytes,
    key: &TagKey,
    leaf: Option<u64>,
) -> Result<(Datagram, Option<ChainingValue>), DatagramError> {
    let id = peek_transfer_id(bytes)?;
    let split = bytes.len() - TAG_LEN;
    let (signed, tag) = bytes.split_at(split);
    let mut cv = None;
    let expected = match leaf {
        Some(leaf) if signed[3] == Kind::Data.code() => {
            let head_len = HEADER_LEN + DATA_BODY_LEN;
            let head = signed.get(..head_len).ok_or(DatagramError::Malformed)?;
            let (_, offset) = be_u64.parse(&head[HEADER_LEN + 8..]).map_err(malformed)?;
            let c = leaf_cv(leaf, offset, &signed[head_len..]).ok_or(DatagramError::Malformed)?;
            cv = Some(c);
            key.tag_with_cv(head, &c)
        }
        _ => key.tag(signed),
    };
    if !constant_time_eq(&expected, tag) {
        return Err(DatagramError::BadTag);
    }
    let kind = Kind::from_code(signed[3]).ok_or(DatagramError::UnknownKind(signed[3]))?;
    let body_bytes = &signed[HEADER_LEN..];
    let body = match kind {
        Kind::Hello => {
            let (_, (file_size, payload_size)) = all_consuming((be_u64, be_u32))
                .parse(body_bytes)
                .map_err(malformed)?;
            Body::Hello {
                file_size,
                payload_size,
            }
        }
        Kind::Data => {
            let (rest, (pn, offset)) = (be_u64, be_u64).parse(body_bytes).map_err(malformed)?;
            let start = split - rest.len();
            Body::Data {
                pn,
                offset,
                payload: bytes.slice(start..split),
            }
        }
        Kind::Fin => {
            let (_, (file_size, h)) = all_consuming((be_u64, take(HASH_LEN)))
                .parse(body_bytes)
                .map_err(malformed)?;
            let mut hash = [0u8; HASH_LEN];
            hash.copy_from_slice(h);
            Body::Fin { file_size, hash }
        }
        Kind::Ack => {
            let (rest, (ack_delay_ms, cum_offset, window_end, n)) =
                (be_u16, be_u64, be_u64, be_u16)
                    .parse(body_bytes)
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
            let (_, file_size) = all_consuming(be_u64).parse(body_bytes).map_err(malformed)?;
            Body::Done { file_size }
        }
        Kind::Abort => {
            let (_, code) = all_consuming(be_u8).parse(body_bytes).map_err(malformed)?;
            Body::Abort {
                reason: PeerReason::from_code(code),
            }
        }
        Kind::Challenge => {
            let (_, token) = all_consuming(be_u64).parse(body_bytes).map_err(malformed)?;
            Body::Challenge { token }
        }
        Kind::Response => {
            let (_, token) = all_consuming(be_u64).parse(body_bytes).map_err(malformed)?;
            Body::Response { token }
        }
    };
    Ok((Datagram { id, body }, cv))
}

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

fn malformed(_: NomErr<'_>) -> DatagramError {
    DatagramError::Malformed
}

/// Compare tags without an early exit, so timing does not reveal how much of a forgery matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> TagKey {
        TagKey::derive(&TransferSecret([7; 32]))
    }

    fn body_strategy() -> impl Strategy<Value = Body> {
        prop_oneof![
            (any::<u64>(), any::<u32>()).prop_map(|(file_size, payload_size)| Body::Hello {
                file_size,
                payload_size
            }),
            (
                any::<u64>(),
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..2000)
            )
                .prop_map(|(pn, offset, p)| Body::Data {
                    pn,
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
        fn render_then_parse_is_identity(id in any::<u64>(), body in body_strategy()) {
            let d = Datagram { id: TransferId(id), body };
            let bytes = encode(&d, &key());
            prop_assert_eq!(peek_transfer_id(&bytes), Ok(TransferId(id)));
            prop_assert_eq!(decode(&bytes, &key()), Ok(d));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let bytes = Bytes::from(bytes);
            let _ = peek_transfer_id(&bytes);
            let _ = decode(&bytes, &key());
        }

        #[test]
        fn authentic_header_with_arbitrary_body_never_panics(
            kind in 0u8..9,
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            // Forge a correctly tagged datagram around random bytes: the parser sees real
            // garbage instead of stopping at the tag.
            let mut buf = BytesMut::new();
            buf.put_slice(&MAGIC);
            buf.put_u8(VERSION);
            buf.put_u8(kind);
            buf.put_u64(1);
            buf.put_slice(&body);
            let t = key().tag(&buf);
            buf.put_slice(&t);
            let _ = decode(&buf.freeze(), &key());
        }

        #[test]
        fn any_flipped_bit_is_rejected(body in body_strategy(), bit in any::<usize>()) {
            let bytes = encode(&Datagram { id: TransferId(3), body }, &key());
            let mut v = bytes.to_vec();
            let i = bit % (v.len() * 8);
            v[i / 8] ^= 1 << (i % 8);
            prop_assert!(decode(&Bytes::from(v), &key()).is_err());
        }
    }

    proptest! {
        #[test]
        fn tree_mode_data_round_trips_and_binds_the_payload(
            index in 0u64..1000,
            len in 1usize..=4096,
            byte in any::<u8>(),
            flip in any::<usize>(),
        ) {
            let leaf = 4096u64;
            let payload = Bytes::from(vec![byte; len]);
            let offset = index * leaf;
            let cv = leaf_cv(leaf, offset, &payload).unwrap();
            let d = Datagram { id: TransferId(5), body: Body::Data { pn: index, offset, payload } };
            let bytes = encode_with(&d, &key(), Some(&cv));
            prop_assert_eq!(decode_with(&bytes, &key(), Some(leaf)), Ok((d, Some(cv))));
            let mut v = bytes.to_vec();
            let i = flip % v.len();
            v[i] ^= 1;
            prop_assert!(decode_with(&Bytes::from(v), &key(), Some(leaf)).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic_in_tree_mode(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut v = bytes;
            if v.len() > 4 {
                v[0] = b'H';
                v[1] = b'U';
                v[2] = VERSION;
                v[3] = 2;
            }
            let _ = decode_with(&Bytes::from(v), &key(), Some(2048));
        }
    }

    #[test]
    fn another_transfers_key_is_rejected() {
        let d = Datagram {
            id: TransferId(1),
            body: Body::Done { file_size: 5 },
        };
        let bytes = encode(&d, &key());
        let other = TagKey::derive(&TransferSecret([8; 32]));
        assert_eq!(decode(&bytes, &other), Err(DatagramError::BadTag));
    }

    #[test]
    fn default_data_datagram_fits_a_1500_byte_mtu() {
        let payload = payload_capacity(super::super::MTU_DATAGRAM);
        let d = Datagram {
            id: TransferId(1),
            body: Body::Data {
                pn: 0,
                offset: 0,
                payload: Bytes::from(vec![0; payload]),
            },
        };
        assert!(encode(&d, &key()).len() + 40 + 8 <= 1500);
    }

    #[test]
    fn unknown_version_is_named() {
        let mut v = encode(
            &Datagram {
                id: TransferId(1),
                body: Body::Done { file_size: 0 },
            },
            &key(),
        )
        .to_vec();
        v[2] = 9;
        assert_eq!(
            peek_transfer_id(&v),
            Err(DatagramError::UnsupportedVersion(9))
        );
    }
}
