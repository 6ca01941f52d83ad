//! The transfers a client runs: uploads it presents and downloads it receives, all on one UDP
//! socket through a [`TransferSet`], with the file operations and messages around them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::output::{
    ClientOutput, Direction, Display, FileOp, FileProblem, FileResult, Progress, Tone,
};
use super::render::human_bytes;
use crate::proto::upload::UploadGrant;
use crate::time::UnixMillis;
use crate::transfer::names::MAX_DUPLICATES;
use crate::transfer::{
    AbortReason, EphemeralKey, PeerReason, Receiver, ReceiverEvent, Role, Sender, SenderEvent,
    SetEvent, TransferConfig, TransferId, TransferSet, candidate, part_name, saved_name,
};
use crate::types::UserName;

/// How often a progress report is emitted per transfer, at most (ms).
const PROGRESS_EVERY_MS: u64 = 200;

#[derive(Debug)]
struct Upload {
    to: UserName,
    name: String,
    size: u64,
    started: UnixMillis,
}

#[derive(Debug)]
struct Download {
    from: UserName,
    name: String,
    saved_as: String,
    size: u64,
    started: UnixMillis,
    /// Complete and verified; waiting for the driver to give the part file its name.
    finishing: bool,
    /// Which of the names `candidate(saved_as, n)` is being tried.
    attempt: u32,
}

/// Every transfer of one client and what to say about it.
#[derive(Debug)]
pub struct Transfers {
    set: TransferSet,
    config: TransferConfig,
    uploads: BTreeMap<TransferId, Upload>,
    downloads: BTreeMap<TransferId, Download>,
    last_progress: BTreeMap<TransferId, UnixMillis>,
    /// Close each transfer's line with its counters.
    stats: bool,
    /// Where every transfer's X25519 secret comes from: a CSPRNG seeded once (from the OS by
    /// the runtimes, fixed in tests and simulations, so a session replays exactly).
    rng: ChaCha20Rng,
}

fn rate(bytes: u64, since: UnixMillis, now: UnixMillis) -> String {
    let ms = now.millis_since(since).max(1);
    let per_sec = bytes as f64 * 1000.0 / ms as f64;
    format!(
        "{} in {:.1} s, {}/s",
        human_bytes(bytes),
        ms as f64 / 1000.0,
        human_bytes(per_sec as u64)
    )
}

fn show(out: &mut Vec<ClientOutput>, tone: Tone, text: String) {
    out.push(ClientOutput::Show(Display {
        tone,
        text,
        pushed: true,
    }));
}

impl Transfers {
    /// Transfers with these settings, their keys drawn from a generator seeded with
    /// `rng_seed`; with `stats`, each closing line carries the counters.
    pub fn new(config: TransferConfig, stats: bool, rng_seed: [u8; 32]) -> Self {
        Self {
            set: TransferSet::new(&config),
            config,
            uploads: BTreeMap::new(),
            downloads: BTreeMap::new(),
            last_progress: BTreeMap::new(),
            stats,
            rng: ChaCha20Rng::from_seed(rng_seed),
        }
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
                    " [{} ms, {} datagrams received, {} duplicates, {} acks sent, peak held {} bytes, {} rejected ({} failed authentication)]",
                    now.millis_since(since),
                    st.datagrams,
                    st.duplicates,
                    st.acks_sent,
                    st.peak_buffered,
                    st.rejected.total(),
                    st.rejected.unauthentic
                )
            }
            _ => String::new(),
        }
    }

    /// Whether any transfer is running.
    pub fn is_busy(&self) -> bool {
        !self.uploads.is_empty() || !self.downloads.is_empty()
    }

    /// How many transfers the socket's set still holds (running, or lingering after the end).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.set.ids().count()
    }

    /// Whether a finished download still confirms itself to its presenter: leaving now could
    /// leave the presenter unsure whether the file arrived.
    pub fn is_lingering(&self) -> bool {
        self.set.is_lingering()
    }

    /// Why a new upload may not start now, if it may not: as many run as the client takes.
    pub fn upload_refusal(&self) -> Option<String> {
        let max = self.config.max_outgoing;
        (self.uploads.len() >= max).then(|| {
            let running = match self.uploads.len() {
                1 => "1 upload is".to_string(),
                n => format!("{n} uploads are"),
            };
            format!("{running} running already (the most at once); wait for one to finish")
        })
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
        self.uploads.insert(
            grant.id,
            Upload {
                to: grant.user,
                name: grant.name,
                size: grant.size,
                started: now,
            },
        );
    }

    /// A presenter announced a file for us: get ready to receive it.
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
        let mut receiver = Receiver::new(
            grant.id,
            &grant.secret,
            grant.size,
            grant.peer,
            config,
            key,
            now,
        );
        receiver.accept(now);
        self.set.add_receiver(receiver);
        out.push(ClientOutput::File(FileOp::CreatePart {
            id: grant.id,
            part: part_name(&saved_as, grant.id),
        }));
        self.downloads.insert(
            grant.id,
            Download {
                from: grant.user,
                name: grant.name,
                saved_as,
                size: grant.size,
                started: now,
                finishing: false,
                attempt: 0,
            },
        );
    }

    /// A datagram arrived on the UDP socket.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: Bytes, now: UnixMillis) {
        self.set.handle_datagram(from, &bytes, now);
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        self.set.handle_timeout(now);
    }

    /// When the next timer is due.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.set.poll_timeout()
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
            FileResult::Data { offset, data } => self.set.handle_file_data(id, offset, data, now),
            FileResult::Saved { name } => {
                if let Some(d) = self.downloads.remove(&id) {
                    let stats = self.receiver_stats(id, d.started, now);
                    show(
                        out,
                        Tone::Success,
                        format!(
                            "Received {} from {}, saved as {name} ({}){stats}",
                            d.name,
                            d.from,
                            rate(d.size, d.started, now)
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
                if let Some(d) = self.downloads.get(&id) {
                    show(
                        out,
                        Tone::Error,
                        format!("Cannot save {} from {}: {problem}", d.saved_as, d.from),
                    );
                    if d.finishing {
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

    /// Cancel every transfer (logging out).
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
        while let Some(t) = self.set.poll_transmit(now) {
            out.push(ClientOutput::Transmit {
                to: t.to,
                bytes: t.contents,
            });
        }
        // Events can follow transmits (an ACK completing the upload).
        while let Some((id, event)) = self.set.poll_event() {
            self.on_event(id, event, now, out);
        }
        self.report_progress(now, out);
        self.set.remove_finished();
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
                out.push(ClientOutput::File(FileOp::Read { id, offset, len }))
            }
            SetEvent::Sender(SenderEvent::Complete) => {
                out.push(ClientOutput::File(FileOp::CloseSource { id }));
                if let Some(u) = self.uploads.remove(&id) {
                    self.progress_done(id, Direction::Upload, &u.name, u.size, out);
                    let stats = self.sender_stats(id, u.started, now);
                    show(
                        out,
                        Tone::Success,
                        format!(
                            "{} has been uploaded to {} ({}){stats}",
                            u.name,
                            u.to,
                            rate(u.size, u.started, now)
                        ),
                    );
                }
            }
            SetEvent::Sender(SenderEvent::Aborted(reason)) => {
                out.push(ClientOutput::File(FileOp::CloseSource { id }));
                if let Some(u) = self.uploads.remove(&id) {
                    self.progress_done(id, Direction::Upload, &u.name, u.size, out);
                    show(
                        out,
                        Tone::Error,
                        format!(
                            "Upload of {} to {} failed: {}",
                            u.name,
                            u.to,
                            upload_failure(&u.to, reason)
                        ),
                    );
                }
            }
            // Nothing asks to resume yet.
            SetEvent::Receiver(ReceiverEvent::ReadPart { .. }) => {}
            SetEvent::Receiver(ReceiverEvent::Write { offset, data }) => {
                out.push(ClientOutput::File(FileOp::Write { id, offset, data }))
            }
            SetEvent::Receiver(ReceiverEvent::Complete { .. }) => {
                if let Some(d) = self.downloads.get_mut(&id) {
                    d.finishing = true;
                    let (name, size, saved_as) = (d.name.clone(), d.size, d.saved_as.clone());
                    self.progress_done(id, Direction::Download, &name, size, out);
                    out.push(ClientOutput::File(FileOp::Finish { id, name: saved_as }));
                }
            }
            SetEvent::Receiver(ReceiverEvent::Aborted(reason)) => {
                out.push(ClientOutput::File(FileOp::Discard { id }));
                if let Some(d) = self.downloads.remove(&id) {
                    self.progress_done(id, Direction::Download, &d.name, d.size, out);
                    show(
                        out,
                        Tone::Error,
                        format!(
                            "Upload of {} from {} failed: {reason}; the partial file was removed",
                            d.name, d.from
                        ),
                    );
                }
            }
        }
    }

    fn progress_done(
        &mut self,
        id: TransferId,
        direction: Direction,
        label: &str,
        total: u64,
        out: &mut Vec<ClientOutput>,
    ) {
        self.last_progress.remove(&id);
        out.push(ClientOutput::Progress(Progress {
            id,
            direction,
            label: label.to_string(),
            done: total,
            total,
            finished: true,
        }));
    }

    fn report_progress(&mut self, now: UnixMillis, out: &mut Vec<ClientOutput>) {
        for (&id, u) in &self.uploads {
            let due = self
                .last_progress
                .get(&id)
                .is_none_or(|t| now.millis_since(*t) >= PROGRESS_EVERY_MS);
            if let (true, Some(Role::Send(s))) = (due, self.set.get(id)) {
                self.last_progress.insert(id, now);
                out.push(ClientOutput::Progress(Progress {
                    id,
                    direction: Direction::Upload,
                    label: format!("{} → {}", u.name, u.to),
                    done: s.stats().bytes_acked,
                    total: u.size,
                    finished: false,
                }));
            }
        }
        for (&id, d) in &self.downloads {
            let due = self
                .last_progress
                .get(&id)
                .is_none_or(|t| now.millis_since(*t) >= PROGRESS_EVERY_MS);
            if let (true, false, Some(Role::Receive(r))) = (due, d.finishing, self.set.get(id)) {
                self.last_progress.insert(id, now);
                out.push(ClientOutput::Progress(Progress {
                    id,
                    direction: Direction::Download,
                    label: format!("{} ← {}", d.name, d.from),
                    done: r.stats().bytes_received,
                    total: d.size,
                    finished: false,
                }));
            }
        }
    }
}

/// Why an upload failed, as its presenter should read it: what the audience's client said,
/// in words about that client.
fn upload_failure(to: &UserName, reason: AbortReason) -> String {
    match reason {
        AbortReason::PeerAborted(PeerReason::LocalIo) => format!(
            "{to}'s client cannot save the file (its download folder is missing, full or not writable)"
        ),
        AbortReason::PeerAborted(PeerReason::Busy) => format!(
            "{to}'s client is receiving too many files at once; try again when one has finished"
        ),
        AbortReason::PeerAborted(PeerReason::Refused) => {
            format!("{to}'s client refused the file")
        }
        AbortReason::PeerAborted(PeerReason::Cancelled) => {
            format!("{to} cancelled it (or logged out)")
        }
        other => other.to_string(),
    }
}

/// The problem to report for an upload source that is not a readable regular file.
pub fn upload_problem(path: &str, problem: &FileProblem) -> String {
    format!("Cannot upload {path}: {problem}")
}
