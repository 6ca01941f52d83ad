//! Password hashing off the core thread: a few worker threads run the core's
//! [`HashJob`]s and hand each result back as an input, so a sign-up's 20-30 ms of Argon2
//! never stalls the thread that answers everyone else. Shared by both server runtimes.
//!
//! Each worker keeps one [`HashMemory`] for good: Argon2's working memory (19 MiB by
//! default) is allocated once per worker and reused, never once per sign-up.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use huddle_core::server::{HashDone, HashJob, HashMemory};

/// Where a finished job goes (the runtime's input queue).
pub type Deliver = Arc<dyn Fn(HashDone) + Send + Sync>;

/// The worker pool.
pub struct Hasher {
    jobs: Option<Sender<HashJob>>,
    workers: Vec<JoinHandle<()>>,
}

impl Hasher {
    /// Start `workers` threads (at least one) that deliver their results to `deliver`.
    pub fn start(workers: usize, deliver: Deliver) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<HashJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            let deliver = Arc::clone(&deliver);
            let handle = thread::Builder::new()
                .name(format!("huddle-hash-{i}"))
                .spawn(move || {
                    let mut memory = HashMemory::new();
                    loop {
                        // One worker waits on the queue at a time; the others wait for the lock.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => deliver(job.run(&mut memory)),
                            Err(_) => return,
                        }
                    }
                })?;
            handles.push(handle);
        }
        Ok(Self {
            jobs: Some(tx),
            workers: handles,
        })
    }

    /// Queue a job.
    pub fn submit(&self, job: HashJob) {
        if let Some(tx) = &self.jobs {
            // Fails only once the pool is stopping; the job's connection is going away too.
            let _ = tx.send(job);
        }
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        // Workers finish the job at hand, then see the queue closed.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
