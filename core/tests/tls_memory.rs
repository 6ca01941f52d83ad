//! Bounded memory under hostile TLS input, measured with a counting allocator.
//!
//! One test function, so nothing else allocates in this process while it measures. Bounds are
//! relative: a megabyte of hostile input must cost a small, fixed amount, not a megabyte.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use huddle_core::UnixMillis;
use huddle_core::tls::{
    ClientTls, HostPort, KnownHosts, ServerIdentity, ServerTls, Session, TlsLimits,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Run `f` and return how far above the starting level live memory peaked.
fn peak_growth(f: impl FnOnce()) -> usize {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(start)
}

const NOW: UnixMillis = UnixMillis(1_780_272_000_000);
const KIB: usize = 1024;

fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

fn feed<S: huddle_core::tls::session::Side>(session: &mut Session<S>, bytes: &[u8]) -> bool {
    for piece in bytes.chunks(4 * KIB) {
        if session.handle_wire(piece, NOW).is_err() {
            while session.poll_transmit().is_some() {}
            return true;
        }
        while session.poll_plaintext().is_some() {}
    }
    false
}

#[test]
fn hostile_and_bulk_input_cost_bounded_memory() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let identity =
        ServerIdentity::from_der(vec![cert.der().to_vec()], key.serialize_der()).unwrap();
    let server_tls = ServerTls::new(&identity, TlsLimits::default()).unwrap();

    // A 1 MiB ClientHello announced as 16 MiB.
    let mut first = vec![0x41u8; 16 * KIB];
    first[..4].copy_from_slice(&[1, 0xFF, 0xFF, 0xFF]);
    let mut flood = record(22, &first);
    while flood.len() < 1 << 20 {
        flood.extend(record(22, &[0x41; 16 * KIB]));
    }
    let mut session = server_tls.accept([1; 32], NOW).unwrap();
    let mut failed = false;
    let growth = peak_growth(|| failed = feed(&mut session, &flood));
    drop(session);
    assert!(failed, "the flood was accepted");
    assert!(
        growth < 160 * KIB,
        "a 1 MiB ClientHello flood peaked {growth} bytes above start"
    );
    eprintln!("peak growth: ClientHello flood {growth} B");

    // A megabyte of one-byte fragments of a ClientHello announced at the largest size rustls
    // accepts (64 KiB - 1), so it has to hold fragments before it can judge the message.
    let mut trickle = Vec::new();
    for b in [1, 0, 0xFF, 0xFF] {
        trickle.extend(record(22, &[b]));
    }
    while trickle.len() < 1 << 20 {
        trickle.extend(record(22, &[0x41]));
    }
    let mut session = server_tls.accept([2; 32], NOW).unwrap();
    let growth = peak_growth(|| failed = feed(&mut session, &trickle));
    drop(session);
    assert!(failed, "the trickle was accepted");
    assert!(
        growth < 160 * KIB,
        "a fragment trickle peaked {growth} bytes above start"
    );
    eprintln!("peak growth: fragment trickle {growth} B");

    // A megabyte of garbage.
    let garbage = vec![0x47u8; 1 << 20];
    let mut session = server_tls.accept([3; 32], NOW).unwrap();
    let growth = peak_growth(|| failed = feed(&mut session, &garbage));
    drop(session);
    assert!(failed);
    assert!(
        growth < 64 * KIB,
        "garbage peaked {growth} bytes above start"
    );
    eprintln!("peak growth: garbage {growth} B");

    // Bulk data through an established session costs what one record costs, whatever the
    // total: 1 MiB and 8 MiB peak alike.
    let bulk = |total: usize| {
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let (known, _) = KnownHosts::parse("kh", "");
        let mut client = ClientTls::pins_only(TlsLimits::default())
            .connect(
                &HostPort::from_addr((ip, 4000).into()),
                ip,
                &known,
                [4; 32],
                NOW,
            )
            .unwrap();
        let mut server = server_tls.accept([5; 32], NOW).unwrap();
        for _ in 0..4 {
            while let Some(b) = client.poll_transmit() {
                server.handle_wire(&b, NOW).unwrap();
            }
            while let Some(b) = server.poll_transmit() {
                client.handle_wire(&b, NOW).unwrap();
            }
            while client.poll_event().is_some() {}
            while server.poll_event().is_some() {}
        }
        assert!(client.is_established() && server.is_established());
        let piece = vec![0x55u8; 16 * KIB];
        let mut received = 0;
        let growth = peak_growth(|| {
            for _ in 0..total / piece.len() {
                client.send(&piece, NOW).unwrap();
                while let Some(b) = client.poll_transmit() {
                    server.handle_wire(&b, NOW).unwrap();
                    while let Some(p) = server.poll_plaintext() {
                        received += p.len();
                    }
                }
            }
        });
        assert_eq!(received, total);
        growth
    };
    let one = bulk(1 << 20);
    let eight = bulk(8 << 20);
    assert!(
        one < 256 * KIB,
        "1 MiB of data peaked {one} bytes above start"
    );
    assert!(
        eight < one + 64 * KIB,
        "8 MiB peaked at {eight}, 1 MiB at {one}: memory grows with the total"
    );
    eprintln!("peak growth: bulk 1 MiB {one} B, 8 MiB {eight} B");
}
