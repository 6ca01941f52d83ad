//! What the whole-file hash and the datagram cipher alone cost on this machine: the CPU a
//! transfer spends that a TCP copy does not. `bench udp` prints it next to its runs so the
//! gap to the TCP copy can be read against what no transport change can remove.
//!
//! Measured with the primitives the transfer uses (BLAKE3 through `blake3::Hasher`, AES-256-GCM
//! through ring's `seal_in_place_separate_tag`, the payload copied into place first as the
//! sender does), on one core, best of three passes over 64 MiB held in memory.

use std::time::Instant;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const PASS_BYTES: usize = 64 << 20;

/// Speeds in bytes per second.
#[derive(Debug, Clone)]
pub struct Floor {
    /// BLAKE3 over the file.
    pub hash: f64,
    /// AES-256-GCM sealing, by payload size.
    pub seal: Vec<(usize, f64)>,
}

impl Floor {
    /// AES-256-GCM's speed at `payload` bytes per datagram.
    pub fn seal_speed(&self, payload: usize) -> f64 {
        self.seal
            .iter()
            .find(|(p, _)| *p == payload)
            .map_or(f64::NAN, |(_, s)| *s)
    }

    /// CPU seconds one side spends hashing and sealing (or opening) `bytes` in payloads of
    /// `payload` bytes.
    pub fn seconds(&self, bytes: u64, payload: usize) -> f64 {
        bytes as f64 / self.hash + bytes as f64 / self.seal_speed(payload)
    }
}

/// Measure BLAKE3, and AES-256-GCM at each payload size of `payloads`.
pub fn measure(payloads: &[usize]) -> Floor {
    let data: Vec<u8> = (0..PASS_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let hash = PASS_BYTES as f64
        / best(&mut || {
            let mut h = blake3::Hasher::new();
            for piece in data.chunks(256 << 10) {
                h.update(piece);
            }
            std::hint::black_box(h.finalize());
        });
    let seal = payloads.iter().map(|&size| {
        let key = UnboundKey::new(&AES_256_GCM, &[7; 32]).map(LessSafeKey::new);
        let Ok(key) = key else {
            return (size, f64::NAN);
        };
        let mut buf = vec![0u8; size.max(1)];
        let secs = best(&mut || {
            for (n, piece) in data.chunks(size.max(1)).enumerate() {
                let out = &mut buf[..piece.len()];
                out.copy_from_slice(piece);
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&(n as u64).to_be_bytes());
                let tag = key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from([1u8; 34]),
                    out,
                );
                std::hint::black_box(&tag);
            }
        });
        (size, PASS_BYTES as f64 / secs)
    });
    Floor {
        hash,
        seal: seal.collect(),
    }
}
