//! Uploads asked for while as many run as the client takes: they wait their turn here and
//! start, oldest first, as running ones end.
//!
//! Why a queue and not a refusal: a script pipes `UPD` lines one after the other (each only
//! waits for its reply, which comes when the upload starts), and a person drops a folder's
//! worth of clips; both mean "send all of these". Refusing the 17th would lose it unless the
//! user noticed and typed it again later. The queue is bounded, so a runaway script still
//! gets a clear refusal instead of an unbounded list.

use std::collections::VecDeque;

use crate::transfer::base_name;
use crate::types::UserName;

/// Most uploads waiting at once. Why 256: far more than a person types or drops, and a waiting
/// upload holds only its line (at most 8 KiB), so the queue holds at most 2 MiB.
pub const MAX_QUEUED_UPLOADS: usize = 256;

/// An upload the user asked for: waiting its turn, the file check or the server's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingUpload {
    pub(super) to: UserName,
    pub(super) path: String,
}

impl PendingUpload {
    /// The file's name as the transfer's lines show it (the path's last part; the whole
    /// path when it has no valid name, which the file check will refuse when its turn comes).
    pub(super) fn file_name(&self) -> &str {
        base_name(&self.path).unwrap_or(&self.path)
    }
}

/// The queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QueueFull;

/// The uploads waiting their turn, oldest first.
#[derive(Debug, Default)]
pub(super) struct UploadQueue {
    waiting: VecDeque<PendingUpload>,
}

impl UploadQueue {
    /// Put `upload` last in line; its place in line (1 for the next to start).
    pub(super) fn push(&mut self, upload: PendingUpload) -> Result<usize, QueueFull> {
        if self.waiting.len() >= MAX_QUEUED_UPLOADS {
            return Err(QueueFull);
        }
        self.waiting.push_back(upload);
        Ok(self.waiting.len())
    }

    /// The next upload to start.
    pub(super) fn pop(&mut self) -> Option<PendingUpload> {
        self.waiting.pop_front()
    }

    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Take out the first waiting upload of the file named `name`.
    pub(super) fn remove_named(&mut self, name: &str) -> Option<PendingUpload> {
        let at = self.waiting.iter().position(|u| u.file_name() == name)?;
        self.waiting.remove(at)
    }

    /// Take out every waiting upload.
    pub(super) fn clear(&mut self) -> Vec<PendingUpload> {
        self.waiting.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(path: &str) -> PendingUpload {
        PendingUpload {
            to: UserName::new("luke").expect("a valid name"),
            path: path.to_string(),
        }
    }

    #[test]
    fn uploads_start_in_the_order_they_were_asked_for_and_the_line_is_bounded() {
        let mut q = UploadQueue::default();
        for n in 0..MAX_QUEUED_UPLOADS {
            assert_eq!(q.push(up(&format!("{n}.mp4"))), Ok(n + 1));
        }
        assert_eq!(q.push(up("one too many.mp4")), Err(QueueFull));
        assert_eq!(q.len(), MAX_QUEUED_UPLOADS);
        for n in 0..MAX_QUEUED_UPLOADS {
            assert_eq!(q.pop(), Some(up(&format!("{n}.mp4"))));
        }
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_waiting_upload_is_named_by_its_file_name() {
        let mut q = UploadQueue::default();
        q.push(up("/videos/a.mp4")).expect("room");
        q.push(up("clips/b.mp4")).expect("room");
        q.push(up("b.mp4")).expect("room");
        assert_eq!(q.remove_named("a.mp4"), Some(up("/videos/a.mp4")));
        assert_eq!(q.remove_named("a.mp4"), None);
        assert_eq!(q.remove_named("b.mp4"), Some(up("clips/b.mp4")));
        assert_eq!(q.clear(), vec![up("b.mp4")]);
        assert!(q.is_empty());
    }
}
