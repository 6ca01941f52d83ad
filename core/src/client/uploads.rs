//! The transfers a client runs: uploads it presents and downloads it receives, all on one UDP
//! socket through a [`TransferSet`], with the file operations around them.
//!
//! # A download's life
//! 1. Judged by the audience's [`ConsentPolicy`]: taken, declined (the presenter is told at
//!    once), or asked about — then it waits, holding the presenter, until the user answers
//!    ([`Transfers::decide`]) or the decision time runs out.
//! 2. Taken: the driver looks for a part an interrupted transfer of the same file kept
//!    ([`FileOp::FindResumable`]); the best match is opened ([`FileOp::OpenPart`]) and its
//!    blocks are read back for the receiver's resume offer, otherwise a new part is created.
//! 3. Received, then verified and named; or interrupted — cancelled by either side
//!    ([`Transfers::cancel`]), the network cut, the client quitting — when the part is kept
//!    with its sidecar ([`FileOp::KeepPart`]) if `resume::keeps_part` says so, else
//!    discarded.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::consent::{ConsentPolicy, Declined, Verdict};
use super::local::Target;
use super::narration::{
    download_never_arrived, duration, part_fate, rate, upload_failure, upload_never_answered,
};
use super::output::{
    ClientOutput, Direction, Display, FileOp, FileResult, KeptPart, Outcome, Phase, Progress, Tone,
};
use super::progress::{Meter, ProgressConfig};
use super::render::human_bytes;
use crate::proto::upload::UploadGrant;
use crate::time::UnixMillis;
use crate::transfer::names::MAX_DUPLICATES;
use crate::transfer::resume::{self, Sidecar};
use crate::transfer::tree::BLOCK;
use crate::transfer::{
    AbortReason, EphemeralKey, HoldReason, PeerReason, Receiver, ReceiverEvent, Role, Sender,
    SenderEvent, SetEvent, TransferConfig, TransferId, TransferSet, candidate, is_part_of,
    part_name, saved_name,
};
use crate::types::UserName;

#[derive(Debug)]
struct Upload {
    to: UserName,
    name: String,
    size: u64,
    started: UnixMillis,
    /// When the file's bytes began to go (its first read): the speed is of that, not of the
    /// time the audience took to decide.
    sending_since: Option<UnixMillis>,
    /// Whether the presenter was told that the audience is being asked.
    told_waiting: bool,
    /// Whether the presenter was told that the audience resumes.
    told_resume: bool,
    /// The local user cancelled it.
    cancelled: bool,
}

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The user is being asked whether to take it.
    Asking,
    /// Taken; its part file is being found, opened or created.
    Preparing,
    /// The bytes come (after a resume's check of the kept part).
    Receiving,
    /// Complete and verified; waiting for the driver to give the part file its name.
    Finishing,
}

/// The part file of a download, as far as the core asked for one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// None yet (asking, or looking for a kept one).
    None,
    /// A kept part is being opened, to hold `keep` bytes.
    Opening { keep: u64 },
    /// Created or opened.
    Open,
}

#[derive(Debug)]
struct Download {
    from: UserName,
    name: String,
    saved_as: String,
    size: u64,
    started: UnixMillis,
    stage: Stage,
    part: Part,
    /// A read of the kept part is outstanding (its failure ends the resume check).
    reading_part: bool,
    /// Bytes a kept part held when this download took it.
    resuming: u64,
    /// Which of the names `candidate(saved_as, n)` is being tried.
    attempt: u32,
    /// The local user cancelled it.
    cancelled: bool,
    /// The local user blocked its presenter meanwhile.
    blocked: bool,
}

/// Every transfer of one client and what to say about it.
#[derive(Debug)]
pub struct Transfers {
    set: TransferSet,
    config: TransferConfig,
    consent: ConsentPolicy,
    uploads: BTreeMap<TransferId, Upload>,
    downloads: BTreeMap<TransferId, Download>,
    /// Uploads that gave up while their machine still repeats the `Abort` (the file and the
    /// audience they were for): see [`SenderEvent::ArrivedAnyway`]. Dropped with the machine.
    given_up: BTreeMap<TransferId, (String, UserName)>,
    /// Downloads the user is asked about, oldest first (what a bare `y` answers).
    questions: VecDeque<TransferId>,
    /// Each running transfer's rate and stall, and when it was last reported.
    meters: BTreeMap<TransferId, Meter>,
    progress: ProgressConfig,
    /// Close each transfer's line with its counters.
    stats: bool,
    /// Where every transfer's X25519 secret comes from: a CSPRNG seeded once (from the OS by
    /// the runtimes, fixed in tests and simulations, so a session replays exactly).
    rng: ChaCha20Rng,
    /// The logged-in user: whose downloads a kept part may resume.
    user: Option<UserName>,
    /// Most datagrams one send of the driver's socket carries (see
    /// [`Transfers::set_max_segments`]).
    max_segments: usize,
}

fn show(out: &mut Vec<ClientOutput>, tone: Tone, text: String) {
    out.push(ClientOutput::Show(Display {
        tone,
        text,
        pushed: true,
    }));
}

impl Transfers {
    /// The transfer machines, for tests that watch them.
    #[cfg(test)]
    pub(crate) fn set(&self) -> &TransferSet {
        &self.set
    }

    /// Transfers with these settings, the audience's `consent` policy and `progress`
    /// reporting, their keys drawn from a generator seeded with `rng_seed`; with `stats`, each
    /// closing line carries the counters.
    pub fn new(
        config: TransferConfig,
        consent: ConsentPolicy,
        progress: ProgressConfig,
        stats: bool,
        rng_seed: [u8; 32],
    ) -> Self {
        Self {
            set: TransferSet::new(&config),
            config,
            consent,
            uploads: BTreeMap::new(),
            downloads: BTreeMap::new(),
            given_up: BTreeMap::new(),
            questions: VecDeque::new(),
            meters: BTreeMap::new(),
            progress,
            stats,
            rng: ChaCha20Rng::from_seed(rng_seed),
            user: None,
            max_segments: 1,
        }
    }

    /// The driver's socket sends up to `segments` datagrams at once (UDP GSO; 1 without):
    /// the transfers' batches are no larger (see [`TransferSet::poll_transmit`]).
    pub fn set_max_segments(&mut self, segments: usize) {
        self.max_segments = segments.max(1);
    }

    /// Most datagrams one send of the driver's socket carries.
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// The user logged in as `user`: kept parts are resumed only for downloads to them.
    pub fn set_user(&mut self, user: &str) {
        self.user = UserName::new(user).ok();
    }

    /// A fresh secret half of a key exchange, for one transfer.
    fn ephemeral(&mut self) -> EphemeralKey {
        let mut bytes = [0u8; 32];
        self.rng.fill_bytes(&mut bytes);
        EphemeralKey::from_bytes(bytes)
    }

    /// The counters of sender `id`, as the closing line shows them (empty without `stats`).
    fn sender_stats(&self, id: TransferId, since: UnixMillis, now: UnixMillis) -> String {
        match (self.stats, self.set.get(id)) {
            (true, Some(Role::Send(s))) => {
                let st = s.stats();
                format!(
                    " [{} ms, {} datagrams sent, {} repeated, {} lost, srtt {} ms, {} probe timeouts, longest wait {} ms]",
                    now.millis_since(since),
                    st.datagrams_sent,
                    st.retransmissions,
                    st.lost,
                    st.srtt_ms,
                    st.probe_timeouts,
                    st.longest_probe_wait_ms
                )
            }
            _ => String::new(),
        }
    }

    /// The counters of receiver `id`, as the closing line shows them (empty without `stats`).
    fn receiver_stats(&self, id: TransferId, since: UnixMillis, now: UnixMillis) -> String {
        match (self.stats, self.set.get(id)) {
            (true, Some(Role::Receive(r))) => {
                let st = r.stats();
                format!(
                    " [{} ms, {} datagrams received, {} duplicates, {} acks sent, peak held {} bytes, {} rejected ({} failed authentication), {} buffers allocated]",
                    now.millis_since(since),
                    st.datagrams,
                    st.duplicates,
                    st.acks_sent,
                    st.peak_buffered,
                    st.rejected.total(),
                    st.rejected.unauthentic,
                    st.blocks_allocated
                )
            }
            _ => String::new(),
        }
    }

    /// Whether any transfer is running.
    pub fn is_busy(&self) -> bool {
        !self.uploads.is_empty() || !self.downloads.is_empty()
    }

    /// How many uploads run.
    #[cfg(test)]
    pub(crate) fn uploads_running(&self) -> usize {
        self.uploads.len()
    }

    /// How many transfers the socket's set still holds (running, or lingering after the end).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.set.ids().count()
    }

    /// Whether a finished download still confirms itself to its presenter, or a given-up
    /// upload still waits to hear whether the file arrived anyway: leaving now could leave one
    /// side wrong about whether the file arrived.
    pub fn is_lingering(&self) -> bool {
        // An upload given up after its hash went out waits (at most the machine's linger) to
        // hear whether the file had arrived anyway, so that what the presenter read is true.
        self.set.is_lingering() || !self.given_up.is_empty()
    }

    /// Whether the user is asked about an incoming upload (a bare `y` or `n` answers it).
    pub fn has_question(&self) -> bool {
        !self.questions.is_empty()
    }

    /// The user's answer about the download `target` names (the oldest question when
    /// implied): take it, or decline it (the presenter is told at once).
    pub fn decide(
        &mut self,
        target: &Target,
        accept: bool,
        now: UnixMillis,
        out: &mut Vec<ClientOutput>,
    ) {
        let verb = if accept { "ACCEPT" } else { "DECLINE" };
        let candidates: Vec<(TransferId, String)> = self
            .questions
            .iter()
            .filter_map(|id| self.downloads.get(id).map(|d| (*id, d.name.clone())))
            .collect();
        let picked = match target {
            Target::Implied => candidates
                .first()
                .map(|c| c.0)
                .ok_or_else(|| "No incoming upload is waiting for an answer.".to_string()),
            Target::All => Err(format!(
                "{verb} takes one upload at a time: {verb} <file>, or y / n for the oldest"
            )),
            Target::Named(name) => pick_named(
                &candidates,
                name,
                "incoming upload waiting for an answer",
                verb,
            ),
        };
        match picked {
            Ok(id) => self.decide_id(id, accept, now, out),
            Err(why) => show(out, Tone::Error, why),
        }
    }

    /// The user's answer about download `id` (from a line, or a UI's own control). Nothing
    /// happens unless that download waits for one.
    pub fn decide_id(
        &mut self,
        id: TransferId,
        accept: bool,
        now: UnixMillis,
        out: &mut Vec<ClientOutput>,
    ) {
        let Some(d) = self.downloads.get_mut(&id) else {
            return;
        };
        if d.stage != Stage::Asking {
            return;
        }
        self.questions.retain(|q| *q != id);
        if accept {
            d.started = now;
            show(
                out,
                Tone::Info,
                format!("Accepted {} from {}; receiving it…", d.name, d.from),
            );
            self.take(id, now, out);
        } else {
            self.set.abort(id, AbortReason::Declined, now);
        }
    }

    /// Download `id` is taken: look for a kept part of the same file.
    fn take(&mut self, id: TransferId, now: UnixMillis, out: &mut Vec<ClientOutput>) {
        if let Some(d) = self.downloads.get_mut(&id) {
            d.stage = Stage::Preparing;
            self.set.take(id, now);
            let saved_as = d.saved_as.clone();
            out.push(ClientOutput::File(FileOp::FindResumable { id, saved_as }));
        }
    }

    /// Start download `id` from scratch in a new part file.
    fn create_part(&mut self, id: TransferId, now: UnixMillis, out: &mut Vec<ClientOutput>) {
        if let Some(d) = self.downloads.get_mut(&id) {
            d.stage = Stage::Receiving;
            d.part = Part::Open;
            out.push(ClientOutput::File(FileOp::CreatePart {
                id,
                part: part_name(&d.saved_as, id),
            }));
            self.set.accept(id, now);
        }
    }

    /// The kept part for download `d` among `kept`: the same file between the same users, at
    /// least a block of it, the most held. Its name and the bytes to keep.
    fn best_kept(&self, d: &Download, kept: &[KeptPart]) -> Option<(String, u64)> {
        let me = self.user.as_ref()?;
        kept.iter()
            .filter(|k| is_part_of(&k.part, &d.saved_as))
            .filter_map(|k| {
                let s = Sidecar::parse(&k.sidecar)?;
                let held = s.held.min(k.len);
                (s.matches(&d.from, me, &d.name, d.size) && held >= BLOCK)
                    .then(|| (k.part.clone(), held))
            })
            .max_by_key(|(_, held)| *held)
    }

    /// The local user blocked `user`: its downloads from `user` stop now (DESIGN: a blocked
    /// user cannot reach you by `UPD`), the question about one is declined, and their parts
    /// are removed (nothing from `user` can resume them while it is blocked). Uploads to
    /// `user` go on: the block is about what reaches this user.
    pub fn presenter_blocked(
        &mut self,
        user: &UserName,
        now: UnixMillis,
        out: &mut Vec<ClientOutput>,
    ) {
        let ids: Vec<TransferId> = self
            .downloads
            .iter()
            .filter(|(_, d)| &d.from == user && d.stage != Stage::Finishing)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(d) = self.downloads.get_mut(&id) else {
                continue;
            };
            d.blocked = true;
            if d.stage == Stage::Asking {
                self.decide_id(id, false, now, out);
            } else {
                self.set.abort(id, AbortReason::Refused, now);
            }
        }
    }

    /// Cancel the running transfer `target` names (the only one when implied, or all): the
    /// other side is told at once; a download keeps its part for resuming. A download still
    /// asked about is declined.
    pub fn cancel(&mut self, target: &Target, now: UnixMillis, out: &mut Vec<ClientOutput>) {
        let mut candidates: Vec<(TransferId, String, String)> = self
            .uploads
            .iter()
            .map(|(id, u)| (*id, u.name.clone(), format!("{} to {}", u.name, u.to)))
            .collect();
        candidates.extend(
            self.downloads
                .iter()
                .filter(|(_, d)| d.stage != Stage::Finishing)
                .map(|(id, d)| (*id, d.name.clone(), format!("{} from {}", d.name, d.from))),
        );
        // Listed by name, not by transfer id (which is random): the same order every time.
        candidates.sort_by(|a, b| a.2.cmp(&b.2));
        let list = || {
            candidates
                .iter()
                .map(|c| c.2.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ids: Vec<TransferId> = match target {
            Target::All => candidates.iter().map(|c| c.0).collect(),
            Target::Implied => match candidates.as_slice() {
                [one] => vec![one.0],
                [] => Vec::new(),
                _ => {
                    show(
                        out,
                        Tone::Error,
                        format!(
                            "Several transfers are running ({}): CANCEL <file>, or CANCEL ALL",
                            list()
                        ),
                    );
                    return;
                }
            },
            Target::Named(name) => {
                let named: Vec<(TransferId, String)> =
                    candidates.iter().map(|c| (c.0, c.1.clone())).collect();
                match pick_named(&named, name, "running transfer", "CANCEL") {
                    Ok(id) => vec![id],
                    Err(why) => {
                        show(out, Tone::Error, why);
                        return;
                    }
                }
            }
        };
        if ids.is_empty() {
            show(out, Tone::Error, "No transfer is running.".to_string());
            return;
        }
        for id in ids {
            if let Some(u) = self.uploads.get_mut(&id) {
                u.cancelled = true;
                self.set.abort(id, AbortReason::Cancelled, now);
            } else if let Some(d) = self.downloads.get_mut(&id) {
                if d.stage == Stage::Asking {
                    self.decide_id(id, false, now, out);
                } else {
                    d.cancelled = true;
                    self.set.abort(id, AbortReason::Cancelled, now);
                }
            }
        }
    }

    /// Whether a running transfer (or a download being asked about) is of a file named `name`.
    pub fn runs_named(&self, name: &str) -> bool {
        self.uploads.values().any(|u| u.name == name)
            || self.downloads.values().any(|d| d.name == name)
    }

    /// The server said `user` went offline: every transfer with that user's client ends now
    /// ([`AbortReason::PeerLeft`]; a download keeps its part for resuming as after a cut)
    /// instead of after the idle timeout. A client that stops on purpose ends its transfers
    /// before it logs out, so one still running here has lost its peer.
    pub fn peer_left(&mut self, user: &UserName, now: UnixMillis) {
        let ids: Vec<TransferId> = self
            .uploads
            .iter()
            .filter(|(_, u)| u.to == *user)
            .map(|(id, _)| *id)
            .chain(
                self.downloads
                    .iter()
                    .filter(|(_, d)| d.from == *user && d.stage != Stage::Finishing)
                    .map(|(id, _)| *id),
            )
            .collect();
        for id in ids {
            self.set.abort(id, AbortReason::PeerLeft, now);
        }
    }

    /// How many uploads run, when that is as many as the client takes: a new one must wait.
    pub fn uploads_at_limit(&self) -> Option<usize> {
        let running = self.uploads.len();
        (running >= self.config.max_outgoing).then_some(running)
    }

    /// The server approved our upload of `path`: start sending.
    pub fn start_upload(
        &mut self,
        grant: UploadGrant,
        path: String,
        now: UnixMillis,
        out: &mut Vec<ClientOutput>,
    ) {
        let mut config = self.config.clone();
        config.seed ^= grant.id.0;
        let key = self.ephemeral();
        let sender = Sender::new(
            grant.id,
            &grant.secret,
            grant.size,
            grant.peer,
            config,
            key,
            now,
        );
        self.set.add_sender(sender);
        out.push(ClientOutput::File(FileOp::OpenSource {
            id: grant.id,
            path,
        }));
        show(
            out,
            Tone::Info,
            format!(
                "Uploading {} ({}) to {} over UDP…",
                grant.name,
                human_bytes(grant.size),
                grant.user
            ),
        );
        self.meters.insert(grant.id, Meter::new(now, 0));
        self.uploads.insert(
            grant.id,
            Upload {
                to: grant.user,
                name: grant.name,
                size: grant.size,
                started: now,
                sending_since: None,
                told_waiting: false,
                told_resume: false,
                cancelled: false,
            },
        );
    }

    /// A presenter announced a file for us: judge it, then ask, take or refuse it.
    pub fn start_download(
        &mut self,
        grant: UploadGrant,
        now: UnixMillis,
        out: &mut Vec<ClientOutput>,
    ) {
        show(
            out,
            Tone::Notice,
            format!(
                "Incoming upload: {} sends {} ({})",
                grant.user,
                grant.name,
                human_bytes(grant.size)
            ),
        );
        let mut config = self.config.clone();
        config.seed ^= grant.id.0;
        let key = self.ephemeral();
        let refuse = |reason, config, key| {
            Receiver::refuse(
                grant.id,
                &grant.secret,
                grant.size,
                grant.peer,
                reason,
                config,
                key,
                now,
            )
        };
        let saved_as = match saved_name(&grant.user, &grant.name) {
            Ok(n) => n,
            Err(e) => {
                show(
                    out,
                    Tone::Error,
                    format!(
                        "Refused the upload of {:?} from {}: {e}",
                        grant.name, grant.user
                    ),
                );
                self.set
                    .add_receiver(refuse(AbortReason::Refused, config, key));
                return;
            }
        };
        // Questions count: each holds a presenter and a share of the memory.
        if self.downloads.len() >= self.config.max_incoming {
            show(
                out,
                Tone::Error,
                format!(
                    "Refused the upload of {} from {}: already receiving {} at once (the most this client takes)",
                    grant.name,
                    grant.user,
                    match self.downloads.len() {
                        1 => "1 file".to_string(),
                        n => format!("{n} files"),
                    }
                ),
            );
            self.set
                .add_receiver(refuse(AbortReason::Busy, config, key));
            return;
        }
        let verdict = self.consent.decide(&grant.user, grant.size);
        if let Verdict::Decline(why) = &verdict {
            show(
                out,
                Tone::Error,
                format!(
                    "Declined {} from {}: {why}; {} was told",
                    grant.name, grant.user, grant.user
                ),
            );
            let reason = match why {
                Declined::TooLarge(_) => AbortReason::TooLarge,
                Declined::NotTrusted => AbortReason::Declined,
            };
            self.set.add_receiver(refuse(reason, config, key));
            return;
        }
        let receiver = Receiver::new(
            grant.id,
            &grant.secret,
            grant.size,
            grant.peer,
            config,
            key,
            now,
        );
        self.set.add_receiver(receiver);
        let asking = verdict == Verdict::Ask;
        if asking {
            self.questions.push_back(grant.id);
            let several = if self.questions.len() > 1 {
                format!(" (ACCEPT {0} or DECLINE {0}: others wait too)", grant.name)
            } else {
                String::new()
            };
            show(
                out,
                Tone::Notice,
                format!(
                    "Accept {} ({}) from {}? Answer y or n{several}; no answer within {} declines it.",
                    grant.name,
                    human_bytes(grant.size),
                    grant.user,
                    duration(self.config.decision_timeout_ms)
                ),
            );
        }
        self.meters.insert(grant.id, Meter::new(now, 0));
        self.downloads.insert(
            grant.id,
            Download {
                from: grant.user,
                name: grant.name,
                saved_as,
                size: grant.size,
                started: now,
                stage: Stage::Asking,
                part: Part::None,
                reading_part: false,
                resuming: 0,
                attempt: 0,
                cancelled: false,
                blocked: false,
            },
        );
        if !asking {
            self.take(grant.id, now, out);
        }
    }

    /// A datagram arrived on the UDP socket.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: Bytes, now: UnixMillis) {
        self.set.handle_datagram(from, &bytes, now);
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        self.set.handle_timeout(now);
    }

    /// When the next timer is due: a transfer's, or the next progress report of a running
    /// one (reports come even when nothing moves, so a stall shows without a UI clock).
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        let report = self
            .meters
            .iter()
            .filter(|(id, _)| self.reports(**id))
            .filter_map(|(_, m)| m.next_due(&self.progress))
            .min();
        [self.set.poll_timeout(), report]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether transfer `id` gets progress reports now (not once a download is being named).
    fn reports(&self, id: TransferId) -> bool {
        self.uploads.contains_key(&id)
            || self
                .downloads
                .get(&id)
                .is_some_and(|d| d.stage != Stage::Finishing)
    }

    /// The driver's answer to a file operation of transfer `id`.
    pub fn handle_file_result(
        &mut self,
        id: TransferId,
        result: FileResult,
        now: UnixMillis,
        out: &mut Vec<ClientOutput>,
    ) {
        match result {
            FileResult::Data { offset, data } => {
                if let Some(d) = self.downloads.get_mut(&id) {
                    d.reading_part = false;
                    self.set.handle_part_data(id, offset, &data, now);
                } else {
                    self.set.handle_file_data(id, offset, data, now);
                }
            }
            FileResult::Resumable(kept) => {
                let Some(d) = self.downloads.get(&id) else {
                    return;
                };
                if d.stage != Stage::Preparing || d.part != Part::None {
                    return;
                }
                match self.best_kept(d, &kept) {
                    Some((part, keep)) => {
                        if let Some(d) = self.downloads.get_mut(&id) {
                            d.part = Part::Opening { keep };
                        }
                        out.push(ClientOutput::File(FileOp::OpenPart { id, part, keep }));
                    }
                    None => self.create_part(id, now, out),
                }
            }
            FileResult::Resumed { len } => {
                let Some(d) = self.downloads.get_mut(&id) else {
                    return;
                };
                let Part::Opening { keep } = d.part else {
                    return;
                };
                let held = keep.min(len);
                d.part = Part::Open;
                d.stage = Stage::Receiving;
                d.resuming = held;
                show(
                    out,
                    Tone::Info,
                    format!(
                        "Resuming {} from {}: {} of {} are here from before; checking them with {}…",
                        d.name,
                        d.from,
                        human_bytes(held),
                        human_bytes(d.size),
                        d.from
                    ),
                );
                self.set.accept_resuming(id, held, now);
            }
            FileResult::Saved { name } => {
                if let Some(d) = self.downloads.remove(&id) {
                    let stats = self.receiver_stats(id, d.started, now);
                    let kept = self.resumed_from(id).unwrap_or(0);
                    let here = match kept {
                        0 => String::new(),
                        r => format!("; {} of it was already here", human_bytes(r)),
                    };
                    show(
                        out,
                        Tone::Success,
                        format!(
                            "Received {} from {}, saved as {name} ({}{here}){stats}",
                            d.name,
                            d.from,
                            rate(d.size, d.size.saturating_sub(kept), d.started, now)
                        ),
                    );
                }
            }
            FileResult::NameTaken => {
                let Some(d) = self.downloads.get_mut(&id) else {
                    return;
                };
                d.attempt += 1;
                if d.attempt > MAX_DUPLICATES {
                    show(
                        out,
                        Tone::Error,
                        format!(
                            "Cannot save {} from {}: too many files named like {} exist in the download folder",
                            d.name, d.from, d.saved_as
                        ),
                    );
                    self.downloads.remove(&id);
                    out.push(ClientOutput::File(FileOp::Discard { id }));
                    return;
                }
                let name = candidate(&d.saved_as, d.attempt);
                out.push(ClientOutput::File(FileOp::Finish { id, name }));
            }
            FileResult::Failed(problem) => {
                if let Some(d) = self.downloads.get_mut(&id) {
                    if matches!(d.part, Part::Opening { .. }) {
                        // The kept part went away or is taken: start afresh.
                        d.part = Part::None;
                        self.create_part(id, now, out);
                        return;
                    }
                    if d.reading_part {
                        d.reading_part = false;
                        self.set.part_unreadable(id, now);
                        return;
                    }
                    show(
                        out,
                        Tone::Error,
                        format!("Cannot save {} from {}: {problem}", d.saved_as, d.from),
                    );
                    if d.stage == Stage::Finishing {
                        self.downloads.remove(&id);
                        out.push(ClientOutput::File(FileOp::Discard { id }));
                        return;
                    }
                } else if let Some(u) = self.uploads.get(&id) {
                    show(
                        out,
                        Tone::Error,
                        format!(
                            "Cannot read {} for the upload to {}: {problem}",
                            u.name, u.to
                        ),
                    );
                }
                self.set.abort(id, AbortReason::LocalIo, now);
            }
            FileResult::Inspected { .. } => {}
        }
    }

    /// Bytes of download `id` it held before it started (a resume), once known.
    fn resumed_from(&self, id: TransferId) -> Option<u64> {
        match self.set.get(id) {
            Some(Role::Receive(r)) => Some(r.stats().resumed_from),
            _ => None,
        }
    }

    /// Cancel every transfer (logging out, quitting, the server gone): every peer is told,
    /// and downloads keep what they received for resuming.
    pub fn cancel_all(&mut self, now: UnixMillis) {
        let ids: Vec<TransferId> = self.set.ids().collect();
        for id in ids {
            self.set.abort(id, AbortReason::Cancelled, now);
        }
    }

    /// Move everything the transfers want done into `out`.
    pub fn drain(&mut self, now: UnixMillis, out: &mut Vec<ClientOutput>) {
        while let Some((id, event)) = self.set.poll_event() {
            self.on_event(id, event, now, out);
        }
        while let Some(b) = self.set.poll_transmit(now, self.max_segments) {
            out.push(ClientOutput::Transmit {
                to: b.to,
                bytes: b.contents,
                segment_size: b.segment_size,
            });
        }
        // Events can follow transmits (an ACK completing the upload).
        while let Some((id, event)) = self.set.poll_event() {
            self.on_event(id, event, now, out);
        }
        self.report_progress(now, out);
        self.set.remove_finished();
        if !self.given_up.is_empty() {
            let set = &self.set;
            self.given_up.retain(|id, _| set.get(*id).is_some());
        }
    }

    fn on_event(
        &mut self,
        id: TransferId,
        event: SetEvent,
        now: UnixMillis,
        out: &mut Vec<ClientOutput>,
    ) {
        match event {
            SetEvent::Sender(SenderEvent::Read { offset, len }) => {
                if let Some(u) = self.uploads.get_mut(&id) {
                    u.sending_since.get_or_insert(now);
                }
                out.push(ClientOutput::File(FileOp::Read { id, offset, len }))
            }
            SetEvent::Sender(SenderEvent::Complete) => {
                out.push(ClientOutput::File(FileOp::CloseSource { id }));
                if let Some(u) = self.uploads.remove(&id) {
                    let label = format!("{} → {}", u.name, u.to);
                    let done = u.size;
                    self.progress_done(
                        id,
                        Direction::Upload,
                        label,
                        done,
                        u.size,
                        Outcome::Complete,
                        out,
                    );
                    let stats = self.sender_stats(id, u.started, now);
                    let kept = self.sent_from(id).unwrap_or(0);
                    let had = match kept {
                        0 => String::new(),
                        r => format!("; {} had {} of it already", u.to, human_bytes(r)),
                    };
                    show(
                        out,
                        Tone::Success,
                        format!(
                            "{} has been uploaded to {} ({}{had}){stats}",
                            u.name,
                            u.to,
                            rate(
                                u.size,
                                u.size.saturating_sub(kept),
                                u.sending_since.unwrap_or(u.started),
                                now
                            )
                        ),
                    );
                }
            }
            SetEvent::Sender(SenderEvent::Aborted(reason)) => {
                out.push(ClientOutput::File(FileOp::CloseSource { id }));
                if let Some(u) = self.uploads.remove(&id) {
                    let label = format!("{} → {}", u.name, u.to);
                    let done = self.bytes_done(id);
                    let outcome = outcome_of(reason);
                    self.progress_done(id, Direction::Upload, label, done, u.size, outcome, out);
                    let text = match self.set.get(id) {
                        Some(Role::Send(s))
                            if reason == AbortReason::PeerSilent && !s.has_heard_from_peer() =>
                        {
                            upload_never_answered(&u.name, &u.to, s.peer())
                        }
                        _ => upload_ended(&u, reason),
                    };
                    show(out, Tone::Error, text);
                    // Its `Abort` may yet meet a receiver that already has the whole file.
                    if matches!(self.set.get(id), Some(Role::Send(s)) if s.hash_sent()) {
                        self.given_up.insert(id, (u.name, u.to));
                    }
                }
            }
            SetEvent::Sender(SenderEvent::ArrivedAnyway) => {
                if let Some((name, to)) = self.given_up.remove(&id) {
                    show(
                        out,
                        Tone::Info,
                        format!("{name} had reached {to} before that: {to} has the whole file"),
                    );
                }
            }
            SetEvent::Receiver(ReceiverEvent::ReadPart { offset, len }) => {
                if let Some(d) = self.downloads.get_mut(&id) {
                    d.reading_part = true;
                }
                out.push(ClientOutput::File(FileOp::ReadPart { id, offset, len }));
            }
            SetEvent::Receiver(ReceiverEvent::Write { offset, data }) => {
                out.push(ClientOutput::File(FileOp::Write { id, offset, data }))
            }
            SetEvent::Receiver(ReceiverEvent::Complete { .. }) => {
                if let Some(d) = self.downloads.get_mut(&id) {
                    d.stage = Stage::Finishing;
                    let label = format!("{} ← {}", d.name, d.from);
                    let (size, saved_as) = (d.size, d.saved_as.clone());
                    self.progress_done(
                        id,
                        Direction::Download,
                        label,
                        size,
                        size,
                        Outcome::Complete,
                        out,
                    );
                    out.push(ClientOutput::File(FileOp::Finish { id, name: saved_as }));
                }
            }
            SetEvent::Receiver(ReceiverEvent::Aborted(reason)) => {
                self.questions.retain(|q| *q != id);
                let Some(d) = self.downloads.remove(&id) else {
                    return;
                };
                // A kept part still being checked has counted none of its bytes as received
                // yet; ended now, it stays what it was (checked again next time), not lost.
                let held = match self.set.get(id) {
                    Some(Role::Receive(r)) if !r.has_started() => d.resuming,
                    Some(Role::Receive(r)) => r.stats().bytes_received,
                    _ => 0,
                };
                let kept = (d.part == Part::Open && resume::keeps_part(reason, held)).then(|| {
                    let sidecar = self.user.as_ref().map(|me| Sidecar {
                        from: d.from.clone(),
                        to: me.clone(),
                        name: d.name.clone(),
                        size: d.size,
                        held,
                        kept_at: now,
                    });
                    sidecar.map(|s| (held, s))
                });
                let kept = kept.flatten();
                match (&kept, &d.part) {
                    (Some((held, sidecar)), _) => out.push(ClientOutput::File(FileOp::KeepPart {
                        id,
                        held: *held,
                        sidecar: Bytes::from(sidecar.render()),
                    })),
                    (None, Part::Open) => out.push(ClientOutput::File(FileOp::Discard { id })),
                    (None, _) => {}
                }
                let label = format!("{} ← {}", d.name, d.from);
                let outcome = outcome_of(reason);
                self.progress_done(id, Direction::Download, label, held, d.size, outcome, out);
                let text = match self.set.get(id) {
                    Some(Role::Receive(r))
                        if reason == AbortReason::PeerSilent && !r.has_heard_from_peer() =>
                    {
                        download_never_arrived(&d.name, &d.from, r.peer())
                    }
                    _ => download_ended(&d, reason, kept.map(|k| k.0), &self.config),
                };
                show(out, Tone::Error, text);
            }
        }
    }

    /// Bytes of upload `id` its audience held before it started (a resume), once known.
    fn sent_from(&self, id: TransferId) -> Option<u64> {
        match self.set.get(id) {
            Some(Role::Send(s)) => Some(s.stats().resumed_from),
            _ => None,
        }
    }

    /// The last report of transfer `id`: the bytes really done and how it ended.
    #[allow(clippy::too_many_arguments)]
    fn progress_done(
        &mut self,
        id: TransferId,
        direction: Direction,
        label: String,
        done: u64,
        total: u64,
        outcome: Outcome,
        out: &mut Vec<ClientOutput>,
    ) {
        self.meters.remove(&id);
        out.push(ClientOutput::Progress(Progress {
            id,
            direction,
            label,
            done: if outcome == Outcome::Complete {
                total
            } else {
                done.min(total)
            },
            total,
            rate: None,
            eta_ms: None,
            stalled_for_ms: None,
            phase: Phase::Ended(outcome),
        }));
    }

    /// Bytes transfer `id` has done, as its machine counts them.
    fn bytes_done(&self, id: TransferId) -> u64 {
        match self.set.get(id) {
            Some(Role::Send(s)) => s.stats().bytes_acked,
            Some(Role::Receive(r)) => r.stats().bytes_received,
            None => 0,
        }
    }

    fn report_progress(&mut self, now: UnixMillis, out: &mut Vec<ClientOutput>) {
        for (&id, u) in &mut self.uploads {
            let Some(Role::Send(s)) = self.set.get(id) else {
                continue;
            };
            if s.waiting_for() == Some(HoldReason::Asking) && !u.told_waiting {
                u.told_waiting = true;
                show(
                    out,
                    Tone::Info,
                    format!("Waiting for {} to accept {}…", u.to, u.name),
                );
            }
            let from = s.stats().resumed_from;
            if from > 0 && !u.told_resume {
                u.told_resume = true;
                // The kept bytes did not move now: the rate starts from them.
                if let Some(m) = self.meters.get_mut(&id) {
                    *m = Meter::new(now, from);
                }
                show(
                    out,
                    Tone::Info,
                    format!(
                        "Resuming {} for {}: {} of it checked as already there; sending the rest…",
                        u.name,
                        u.to,
                        human_bytes(from)
                    ),
                );
            }
        }
        let mut reports = Vec::new();
        for (&id, u) in &self.uploads {
            let Some(Role::Send(s)) = self.set.get(id) else {
                continue;
            };
            let phase = match s.waiting_for() {
                Some(HoldReason::Asking) => Phase::Waiting,
                Some(_) => Phase::Checking,
                None => Phase::Moving,
            };
            let label = format!("{} → {}", u.name, u.to);
            reports.push((
                id,
                Direction::Upload,
                label,
                s.stats().bytes_acked,
                u.size,
                phase,
            ));
        }
        for (&id, d) in &self.downloads {
            let receiver = match self.set.get(id) {
                Some(Role::Receive(r)) => r,
                _ => continue,
            };
            let phase = match d.stage {
                Stage::Asking => Phase::Asking,
                Stage::Preparing => Phase::Checking,
                Stage::Receiving if receiver.is_checking() => Phase::Checking,
                Stage::Receiving => Phase::Moving,
                Stage::Finishing => continue,
            };
            let label = format!("{} ← {}", d.name, d.from);
            let done = receiver.stats().bytes_received;
            reports.push((id, Direction::Download, label, done, d.size, phase));
        }
        for (id, direction, label, done, total, phase) in reports {
            let Some(m) = self.meters.get_mut(&id) else {
                continue;
            };
            // Waiting and checking are not a rate nor a stall, and a resume's kept bytes arrive
            // all at once: the meter starts when bytes start to move.
            if phase != Phase::Moving {
                *m = Meter::new(now, done);
            }
            m.update(now, done);
            if !m.due(now, &self.progress) {
                continue;
            }
            m.sample(now, &self.progress);
            m.reported_at = Some(now);
            let reading = m.reading(now, total, &self.progress);
            let moving = phase == Phase::Moving;
            out.push(ClientOutput::Progress(Progress {
                id,
                direction,
                label,
                done,
                total,
                rate: reading.rate.filter(|_| moving),
                eta_ms: reading.eta_ms.filter(|_| moving),
                stalled_for_ms: reading.stalled_for_ms.filter(|_| moving),
                phase,
            }));
        }
    }
}

/// How a transfer that ended for `reason` ended, for its last progress report.
fn outcome_of(reason: AbortReason) -> Outcome {
    match reason {
        AbortReason::Declined
        | AbortReason::NoAnswer
        | AbortReason::TooLarge
        | AbortReason::PeerAborted(
            PeerReason::Declined | PeerReason::NoAnswer | PeerReason::TooLarge,
        ) => Outcome::Declined,
        AbortReason::Cancelled | AbortReason::PeerAborted(PeerReason::Cancelled) => {
            Outcome::Cancelled
        }
        _ => Outcome::Failed,
    }
}

/// The line a presenter reads when its upload ended without the file arriving.
fn upload_ended(u: &Upload, reason: AbortReason) -> String {
    match reason {
        AbortReason::PeerAborted(PeerReason::Declined) => {
            format!("{} declined {}; nothing was sent", u.to, u.name)
        }
        AbortReason::PeerAborted(PeerReason::TooLarge) => format!(
            "{}'s client declined {} without asking: it is larger than {} takes (its --max-upload); nothing was sent",
            u.to, u.name, u.to
        ),
        AbortReason::PeerAborted(PeerReason::NoAnswer) | AbortReason::NoAnswer => format!(
            "{} did not answer whether to take {}; nothing was sent",
            u.to, u.name
        ),
        AbortReason::Cancelled if u.cancelled => format!(
            "Cancelled the upload of {} to {}; {} was told",
            u.name, u.to, u.to
        ),
        _ => format!(
            "Upload of {} to {} failed: {}",
            u.name,
            u.to,
            upload_failure(&u.to, reason)
        ),
    }
}

/// The line an audience reads when a download ended without the file; `kept` is what was
/// kept for resuming.
fn download_ended(
    d: &Download,
    reason: AbortReason,
    kept: Option<u64>,
    config: &TransferConfig,
) -> String {
    let fate = || {
        if d.part == Part::None {
            String::new()
        } else {
            part_fate(kept, &d.from)
        }
    };
    match reason {
        _ if d.blocked => format!(
            "Stopped {} from {}: you blocked {}; {} was told{}",
            d.name,
            d.from,
            d.from,
            d.from,
            fate()
        ),
        AbortReason::Declined => {
            format!("Declined {} from {}; {} was told", d.name, d.from, d.from)
        }
        AbortReason::NoAnswer => format!(
            "No answer about {} from {} within {}: declined; {} was told",
            d.name,
            d.from,
            duration(config.decision_timeout_ms),
            d.from
        ),
        AbortReason::PeerAborted(PeerReason::Cancelled) if d.stage == Stage::Asking => {
            format!("{} withdrew {} before you answered", d.from, d.name)
        }
        AbortReason::PeerLeft if d.stage == Stage::Asking => {
            format!(
                "{} went offline before you answered about {}",
                d.from, d.name
            )
        }
        AbortReason::PeerLeft => format!(
            "Upload of {} from {} failed: {} went offline (its client stopped){}",
            d.name,
            d.from,
            d.from,
            fate()
        ),
        AbortReason::PeerAborted(PeerReason::Cancelled) => {
            format!("{} cancelled {} (or left){}", d.from, d.name, fate())
        }
        // A presenter's `LocalIo` is a file it could not read on: it shrank, moved or
        // became unreadable while it was sent (its own client says which).
        AbortReason::PeerAborted(PeerReason::LocalIo) => format!(
            "Upload of {} from {} failed: {}'s client could not read the file on (it changed, shrank or became unreadable during the upload){}",
            d.name,
            d.from,
            d.from,
            fate()
        ),
        AbortReason::Cancelled if d.cancelled => format!(
            "Cancelled {} from {}; {} was told{}",
            d.name,
            d.from,
            d.from,
            fate()
        ),
        _ => format!(
            "Upload of {} from {} failed: {reason}{}",
            d.name,
            d.from,
            fate()
        ),
    }
}

/// The one transfer among `candidates` (id and file name) that `name` names: its file name
/// (exactly, else ignoring case), or its id or at least four hex digits of its start.
fn pick_named(
    candidates: &[(TransferId, String)],
    name: &str,
    what: &str,
    verb: &str,
) -> Result<TransferId, String> {
    let exact: Vec<_> = candidates.iter().filter(|c| c.1 == name).collect();
    let matches = if exact.is_empty() {
        let lower = name.to_ascii_lowercase();
        let by_id = lower.len() >= 4 && lower.bytes().all(|b| b.is_ascii_hexdigit());
        candidates
            .iter()
            .filter(|c| {
                c.1.eq_ignore_ascii_case(name) || (by_id && c.0.to_string().starts_with(&lower))
            })
            .collect()
    } else {
        exact
    };
    match matches.as_slice() {
        [one] => Ok(one.0),
        [] => Err(format!("No {what} is named {name:?}.")),
        several => Err(format!(
            "Several of them are named {name:?}; {verb} one by its id: {}",
            several
                .iter()
                .map(|c| c.0.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
