//! The process's descriptor limit, met the way a server should: raise the soft limit to the
//! hard one at start, keep one descriptor in reserve, and when accepting fails for want of
//! descriptors give the reserve up for a moment to tell the waiting client so — instead of
//! leaving it hanging in the listen queue. Shared by both server runtimes.

use std::fs::File;
use std::io::{self, Write};
use std::net::TcpStream;

use huddle_core::server::OUT_OF_RESOURCES_LINE;

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force (0 where
/// it cannot be read).
pub fn raise_nofile() -> io::Result<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read and write one rlimit through a valid pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim = raised;
            }
        }
        Ok(lim.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        Ok(0)
    }
}

/// One descriptor kept for the moment the process has none left.
#[derive(Debug)]
pub struct Reserve {
    spare: Option<File>,
}

impl Default for Reserve {
    fn default() -> Self {
        Self::new()
    }
}

impl Reserve {
    /// Take the spare descriptor now, while there is one.
    pub fn new() -> Self {
        Self { spare: spare() }
    }

    /// Whether an accept error means the process (or system) is out of descriptors.
    pub fn is_exhaustion(e: &io::Error) -> bool {
        #[cfg(unix)]
        {
            matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
        }
        #[cfg(not(unix))]
        {
            let _ = e;
            false
        }
    }

    /// Give the spare up, accept the client waiting with `accept`, tell it the server cannot
    /// take it now, close it, and take the spare again.
    pub fn turn_away(&mut self, accept: impl FnOnce() -> io::Result<TcpStream>) {
        self.spare = None;
        if let Ok(mut s) = accept() {
            let _ = s.set_nonblocking(true);
            let _ = s.write_all(OUT_OF_RESOURCES_LINE.as_bytes());
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.spare = spare();
    }
}

fn spare() -> Option<File> {
    File::open("/dev/null").ok()
}
