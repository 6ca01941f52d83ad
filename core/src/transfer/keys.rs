//! The keys of a transfer, and the only place where a datagram is sealed or opened.
//!
//! Two classes of keys, each one key per direction (so the two sides never share a nonce):
//!
//! - **Handshake keys**, from the per-transfer secret the server issued to both clients over
//!   their own server links: they protect the datagrams exchanged before the peers share a key
//!   (`Hello`, `Welcome`, `Hold`, `Abort`, `Challenge`, `Response`). Only the two clients and
//!   the server can open them.
//! - **Session keys**, from an X25519 exchange whose public halves travel in the `Hello` and
//!   the `Welcome`: HKDF-SHA256 with the transfer secret as salt, the X25519 shared secret as
//!   input and the transfer id, both public keys and the file's announced shape as context.
//!   They protect everything about the file (`Start`, `Data`, `Fin`, `Ack`, `Done`). The
//!   server, which only ever saw the transfer secret, cannot derive them by watching.
//!
//! Every datagram is AES-256-GCM (ring) with a 96-bit nonce made of four zero bytes and the
//! datagram's 64-bit packet number, which each side counts up per key and never repeats; the
//! header travels in clear as associated data. Sealing and opening work in place over the
//! caller's buffer: no allocation per datagram.
//!
//! What the server could still do: it issues the secret that authenticates the handshake, so
//! a server that also intercepted the UDP path could put itself between the two clients.
//! Passively — which is all a server ever is on the UDP path, since it does not carry it — it
//! learns nothing of the file.
//!
//! [`Protection::Clear`] exists only so that `huddle bench udp` can measure what encryption
//! costs: session datagrams then go unencrypted with an all-zero tag (the handshake is still
//! sealed). A receiver accepts only the protection it is configured with, so two normal
//! clients always encrypt, whatever anyone on the path or the server says.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, Tag, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use bytes::{Bytes, BytesMut};

use super::datagram::{self, Body, Class, Datagram, DatagramError, Header, Kind};
use super::{TransferId, TransferSecret};

/// Bytes of the authentication tag at the end of every datagram.
pub const TAG_LEN: usize = 16;
/// Bytes of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

const HANDSHAKE_SALT: &[u8] = b"huddle 2026-12 transfer v2 handshake";
const SESSION_INFO: &[u8] = b"huddle 2026-12 transfer v2 session";

/// How session datagrams are protected; both peers must be configured alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protection {
    /// AES-256-GCM under keys only the two clients know: what every client uses.
    #[default]
    Encrypted,
    /// No encryption of the file's datagrams (the handshake is still sealed): only for
    /// `huddle bench udp` to measure what encryption costs. Never a default, never chosen by
    /// a peer: a receiver refuses a sender whose protection differs from its own.
    Clear,
}

impl Protection {
    /// The code in a `Hello`.
    pub fn code(self) -> u8 {
        match self {
            Protection::Encrypted => 0,
            Protection::Clear => 1,
        }
    }

    /// The protection of a `Hello` code, if this version knows it.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Protection::Encrypted),
            1 => Some(Protection::Clear),
            _ => None,
        }
    }
}

/// One side's secret half of the X25519 exchange of one transfer.
///
/// Drawn by the client core from its seeded CSPRNG (seeded from the OS in production, fixed
/// in tests so a transfer replays exactly), used for one transfer, zeroed when dropped.
pub struct EphemeralKey(StaticSecret);

impl EphemeralKey {
    /// The key made of these 32 random bytes (which are zeroed).
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let key = Self(StaticSecret::from(bytes));
        bytes.zeroize();
        key
    }

    /// The public half, sent to the peer.
    pub fn public(&self) -> [u8; PUBLIC_KEY_LEN] {
        PublicKey::from(&self.0).to_bytes()
    }
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EphemeralKey(..)")
    }
}

/// The peer's public key is not one a shared secret can come from (a low-order point, for
/// which X25519 yields all zeros): the exchange is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeakPeerKey;

/// Which side of a transfer holds the keys: it seals with its own direction's key and opens
/// with the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The presenter.
    Sender,
    /// The audience.
    Receiver,
}

/// One direction's key of one class.
// A few per transfer, never moved: boxing the key would buy nothing.
#[allow(clippy::large_enum_variant)]
enum PacketKey {
    /// AES-256-GCM.
    Aead(LessSafeKey),
    /// Clear mode: no encryption, an all-zero tag, nothing checked.
    Clear,
    /// HKDF refused to expand (it cannot for 32 bytes; kept so no path panics): seals
    /// nothing anyone can open, opens nothing.
    Unusable,
}

impl PacketKey {
    fn expand(prk: &ring::hkdf::Prk, info: &[&[u8]]) -> Self {
        match prk.expand(info, &AES_256_GCM) {
            Ok(okm) => PacketKey::Aead(LessSafeKey::new(UnboundKey::from(okm))),
            Err(_) => PacketKey::Unusable,
        }
    }
}

fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[NONCE_LEN - 8..].copy_from_slice(&pn.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The two keys of one class as one side uses them: its own direction to seal, the peer's to
/// open.
pub(crate) struct KeyPair {
    seal: PacketKey,
    open: PacketKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair(..)")
    }
}

/// Why a datagram did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unauthentic;

impl KeyPair {
    fn from_prk(prk: &ring::hkdf::Prk, context: &[u8], side: Side) -> Self {
        let to_receiver = PacketKey::expand(prk, &[context, b" sender to receiver"]);
        let to_sender = PacketKey::expand(prk, &[context, b" receiver to sender"]);
        match side {
            Side::Sender => Self {
                seal: to_receiver,
                open: to_sender,
            },
            Side::Receiver => Self {
                seal: to_sender,
                open: to_receiver,
            },
        }
    }

    /// The handshake keys of transfer `id`, from the secret the server issued.
    pub(crate) fn handshake(secret: &TransferSecret, id: TransferId, side: Side) -> Self {
        let prk = Salt::new(HKDF_SHA256, HANDSHAKE_SALT).extract(&secret.0);
        Self::from_prk(&prk, &id.0.to_be_bytes(), side)
    }

    /// The session keys: X25519 between `ours` and `theirs`, bound to the transfer secret,
    /// the transfer id and `transcript` (both public keys and what the `Hello` announced).
    pub(crate) fn session(
        ours: &EphemeralKey,
        theirs: &[u8; PUBLIC_KEY_LEN],
        secret: &TransferSecret,
        id: TransferId,
        transcript: &Transcript,
        side: Side,
        protection: Protection,
    ) -> Result<Self, WeakPeerKey> {
        let shared = ours.0.diffie_hellman(&PublicKey::from(*theirs));
        if !shared.was_contributory() {
            return Err(WeakPeerKey);
        }
        let prk = Salt::new(HKDF_SHA256, &secret.0).extract(shared.as_bytes());
        let mut context = Vec::with_capacity(SESSION_INFO.len() + 8 + 64 + 13);
        context.extend_from_slice(SESSION_INFO);
        context.extend_from_slice(&id.0.to_be_bytes());
        context.extend_from_slice(&transcript.sender_public);
        context.extend_from_slice(&transcript.receiver_public);
        context.extend_from_slice(&transcript.file_size.to_be_bytes());
        context.extend_from_slice(&transcript.payload_size.to_be_bytes());
        context.push(protection.code());
        let mut keys = Self::from_prk(&prk, &context, side);
        if protection == Protection::Clear {
            keys.seal = PacketKey::Clear;
            keys.open = PacketKey::Clear;
        }
        Ok(keys)
    }

    /// Seal `in_out` (encrypted in place) under packet number `pn` with `header` as
    /// associated data; returns the tag to append. Each `pn` must be used once per key.
    pub(crate) fn seal(&self, pn: u64, header: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let PacketKey::Aead(key) = &self.seal else {
            return [0; TAG_LEN];
        };
        match key.seal_in_place_separate_tag(nonce(pn), Aad::from(header), in_out) {
            Ok(tag) => tag_bytes(&tag),
            // Only for inputs beyond AES-GCM's limits (64 GiB in one call): never a datagram.
            Err(_) => [0; TAG_LEN],
        }
    }

    /// Open `in_out` (decrypted in place) if `tag` proves it was sealed under `pn` with
    /// `header`. On failure `in_out` holds garbage the caller must discard.
    pub(crate) fn open(
        &self,
        pn: u64,
        header: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Unauthentic> {
        let key = match &self.open {
            PacketKey::Aead(key) => key,
            // Clear mode: nothing to check per datagram (the whole-file hash still is).
            PacketKey::Clear => return Ok(()),
            PacketKey::Unusable => return Err(Unauthentic),
        };
        key.open_in_place_separate_tag(nonce(pn), Aad::from(header), Tag::from(*tag), in_out, 0..)
            .map(|_| ())
            .map_err(|_| Unauthentic)
    }
}

fn tag_bytes(tag: &Tag) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The keys one side of a transfer holds: the handshake pair from the start, the session pair
/// once the exchange is done, and the packet numbers it sealed under each.
///
/// Why the counters live here: a nonce must never repeat under a key, so whoever seals takes
/// the number from the key's own counter. The one exception is the sender's session class,
/// numbered by its flight (the receiver acknowledges data by those numbers): it seals with
/// [`TransferKeys::seal_numbered`] and never with [`TransferKeys::seal`].
pub(crate) struct TransferKeys {
    handshake: KeyPair,
    session: Option<KeyPair>,
    next_handshake_pn: u64,
    next_session_pn: u64,
}

impl std::fmt::Debug for TransferKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferKeys")
            .field("session", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl TransferKeys {
    /// The handshake keys of transfer `id` for `side`; no session keys yet.
    pub(crate) fn new(secret: &TransferSecret, id: TransferId, side: Side) -> Self {
        Self {
            handshake: KeyPair::handshake(secret, id, side),
            session: None,
            next_handshake_pn: 0,
            next_session_pn: 0,
        }
    }

    /// The exchange is done: these are the session keys.
    pub(crate) fn set_session(&mut self, keys: KeyPair) {
        self.session = Some(keys);
    }

    /// Whether the session keys are known.
    pub(crate) fn has_session(&self) -> bool {
        self.session.is_some()
    }

    /// The keys that protect datagrams of `kind`, if known yet.
    pub(crate) fn for_kind(&self, kind: Kind) -> Option<&KeyPair> {
        match kind.class() {
            Class::Handshake => Some(&self.handshake),
            Class::Session => self.session.as_ref(),
        }
    }

    /// Seal `body` for transfer `id` under the next packet number of its class. `None` for a
    /// session datagram before the session keys are known (nothing is sent then).
    pub(crate) fn seal(
        &mut self,
        id: TransferId,
        body: Body,
        pool: &mut BytesMut,
    ) -> Option<Bytes> {
        let pn = self.take_pn(body.kind());
        self.seal_numbered(id, pn, body, pool)
    }

    /// The next packet number of `kind`'s class (handshake and session count apart).
    fn take_pn(&mut self, kind: Kind) -> u64 {
        let counter = match kind.class() {
            Class::Handshake => &mut self.next_handshake_pn,
            Class::Session => &mut self.next_session_pn,
        };
        let pn = *counter;
        *counter += 1;
        pn
    }

    /// [`TransferKeys::seal`], leaving the datagram mutable (see [`datagram::seal_mut`]).
    pub(crate) fn seal_mut(
        &mut self,
        id: TransferId,
        body: Body,
        pool: &mut BytesMut,
    ) -> Option<BytesMut> {
        let pn = self.take_pn(body.kind());
        self.seal_numbered_mut(id, pn, body, pool)
    }

    /// Seal `body` under packet number `pn`, which the caller guarantees it never used with
    /// this class before (the sender's flight numbers).
    pub(crate) fn seal_numbered(
        &self,
        id: TransferId,
        pn: u64,
        body: Body,
        pool: &mut BytesMut,
    ) -> Option<Bytes> {
        let keys = self.for_kind(body.kind())?;
        Some(datagram::seal(&Datagram { id, pn, body }, keys, pool))
    }

    /// [`TransferKeys::seal_numbered`], leaving the datagram mutable so that datagrams
    /// sealed one after the other from `pool` join into one batch (see
    /// [`datagram::seal_mut`]).
    pub(crate) fn seal_numbered_mut(
        &self,
        id: TransferId,
        pn: u64,
        body: Body,
        pool: &mut BytesMut,
    ) -> Option<BytesMut> {
        let keys = self.for_kind(body.kind())?;
        Some(datagram::seal_mut(&Datagram { id, pn, body }, keys, pool))
    }

    /// Open `bytes` with the keys its kind needs, appending the plaintext body to `dst`.
    pub(crate) fn open_into(
        &self,
        bytes: &[u8],
        dst: &mut BytesMut,
    ) -> Result<Header, DatagramError> {
        let header = datagram::peek(bytes)?;
        let keys = self.for_kind(header.kind).ok_or(DatagramError::NoKey)?;
        datagram::open_into(bytes, keys, dst)
    }

    /// Open and parse a whole datagram (into `scratch`, emptied first).
    pub(crate) fn open(
        &self,
        bytes: &[u8],
        scratch: &mut BytesMut,
    ) -> Result<Datagram, DatagramError> {
        scratch.clear();
        let header = self.open_into(bytes, scratch)?;
        let body = datagram::parse_body(&header, scratch.split().freeze())?;
        Ok(Datagram {
            id: header.id,
            pn: header.pn,
            body,
        })
    }
}

/// What the session keys are bound to besides the shared secret: both public keys and the
/// file's shape as the `Hello` announced it. A datagram sealed for another exchange, or an
/// exchange whose `Hello` was altered, opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transcript {
    pub(crate) sender_public: [u8; PUBLIC_KEY_LEN],
    pub(crate) receiver_public: [u8; PUBLIC_KEY_LEN],
    pub(crate) file_size: u64,
    pub(crate) payload_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(a: &EphemeralKey, b: &EphemeralKey) -> Transcript {
        Transcript {
            sender_public: a.public(),
            receiver_public: b.public(),
            file_size: 1000,
            payload_size: 1408,
        }
    }

    fn pair() -> (KeyPair, KeyPair) {
        let (s, r) = (
            EphemeralKey::from_bytes([1; 32]),
            EphemeralKey::from_bytes([2; 32]),
        );
        let t = transcript(&s, &r);
        let secret = TransferSecret([9; 32]);
        let id = TransferId(7);
        let enc = Protection::Encrypted;
        (
            KeyPair::session(&s, &r.public(), &secret, id, &t, Side::Sender, enc).unwrap(),
            KeyPair::session(&r, &s.public(), &secret, id, &t, Side::Receiver, enc).unwrap(),
        )
    }

    #[test]
    fn both_sides_derive_the_same_keys_and_each_direction_its_own() {
        let (sender, receiver) = pair();
        let mut buf = *b"the file's bytes";
        let tag = sender.seal(5, b"header", &mut buf);
        assert_ne!(&buf, b"the file's bytes", "sealed means encrypted");
        let mut copy = buf;
        assert_eq!(receiver.open(5, b"header", &mut copy, &tag), Ok(()));
        assert_eq!(&copy, b"the file's bytes");
        // The sender cannot open its own direction: the keys differ per direction.
        let mut copy = buf;
        assert_eq!(sender.open(5, b"header", &mut copy, &tag), Err(Unauthentic));
    }

    #[test]
    fn another_packet_number_header_or_bit_does_not_open() {
        let (sender, receiver) = pair();
        let mut buf = *b"payload";
        let tag = sender.seal(1, b"h", &mut buf);
        for (pn, header) in [(2u64, &b"h"[..]), (1, b"H")] {
            let mut copy = buf;
            assert_eq!(receiver.open(pn, header, &mut copy, &tag), Err(Unauthentic));
        }
        let mut flipped = buf;
        flipped[0] ^= 1;
        assert_eq!(receiver.open(1, b"h", &mut flipped, &tag), Err(Unauthentic));
    }

    #[test]
    fn the_server_knowing_the_transfer_secret_cannot_derive_the_session_keys() {
        // The server holds the transfer secret and sees both public keys (they travel sealed
        // only with keys derived from that secret); without a private key it gets nowhere: a
        // key pair of its own gives other keys.
        let (sender, _) = pair();
        let (s, r) = (
            EphemeralKey::from_bytes([1; 32]),
            EphemeralKey::from_bytes([2; 32]),
        );
        let server = EphemeralKey::from_bytes([3; 32]);
        let t = transcript(&s, &r);
        let guess = KeyPair::session(
            &server,
            &s.public(),
            &TransferSecret([9; 32]),
            TransferId(7),
            &t,
            Side::Receiver,
            Protection::Encrypted,
        )
        .unwrap();
        let mut buf = *b"secret video";
        let tag = sender.seal(0, b"", &mut buf);
        assert_eq!(guess.open(0, b"", &mut buf, &tag), Err(Unauthentic));
    }

    #[test]
    fn a_low_order_public_key_is_refused() {
        let ours = EphemeralKey::from_bytes([1; 32]);
        let t = transcript(&ours, &ours);
        assert!(
            KeyPair::session(
                &ours,
                &[0; 32],
                &TransferSecret([9; 32]),
                TransferId(1),
                &t,
                Side::Sender,
                Protection::Encrypted
            )
            .is_err()
        );
    }

    #[test]
    fn handshake_keys_differ_per_transfer_and_direction() {
        let secret = TransferSecret([4; 32]);
        let s = KeyPair::handshake(&secret, TransferId(1), Side::Sender);
        let r = KeyPair::handshake(&secret, TransferId(1), Side::Receiver);
        let other = KeyPair::handshake(&secret, TransferId(2), Side::Receiver);
        let mut buf = *b"hello";
        let tag = s.seal(0, b"", &mut buf);
        let mut copy = buf;
        assert!(other.open(0, b"", &mut copy, &tag).is_err());
        assert!(r.open(0, b"", &mut buf, &tag).is_ok());
        assert_eq!(&buf, b"hello");
    }
}
