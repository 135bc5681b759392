//! The few Linux calls the watcher needs, wrapped safely: an inotify instance and its event
//! records, an eventfd to wake the watcher's thread, poll(2), and the coarse real-time clock that
//! file timestamps are taken from.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// What every watched directory reports.
pub const MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CLOSE_WRITE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW
    | libc::IN_EXCL_UNLINK;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A non-blocking inotify instance.
#[derive(Debug)]
pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: no pointers; a returned descriptor is owned by nobody else.
        let fd = check(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        // SAFETY: fd was just returned open by the kernel.
        Ok(Inotify { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Adds (or, for an inode already watched, returns the existing) watch descriptor.
    pub fn add(&self, path: &Path) -> io::Result<i32> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: c is a valid NUL-terminated string for the call's duration.
        check(unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), MASK) })
    }

    /// Removes a watch; one already gone is not an error worth reporting.
    pub fn remove(&self, wd: i32) {
        // SAFETY: no pointers.
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
    }

    /// Reads queued events into `buf`; `Ok(0)` when the queue is empty.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(err)
        }
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// One inotify event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub wd: i32,
    pub mask: u32,
    pub cookie: u32,
    /// The entry's name in the watched directory; `None` for events on the directory itself.
    pub name: Option<&'a OsStr>,
}

const HEADER: usize = 16;

/// Splits a buffer filled by `read` into events (a truncated tail is ignored).
pub fn parse(buf: &[u8]) -> Vec<Event<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= buf.len() {
        let word = |i: usize| u32::from_ne_bytes([buf[at + i], buf[at + i + 1], buf[at + i + 2], buf[at + i + 3]]);
        let (wd, mask, cookie, len) = (word(0) as i32, word(4), word(8), word(12) as usize);
        let Some(raw) = buf.get(at + HEADER..at + HEADER + len) else { break };
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let name = (end > 0).then(|| OsStr::from_bytes(&raw[..end]));
        out.push(Event { wd, mask, cookie, name });
        at += HEADER + len;
    }
    out
}

/// An eventfd the watcher's thread polls, so dropping the `Watcher` wakes it at once.
#[derive(Debug)]
pub struct Wake {
    fd: OwnedFd,
}

impl Wake {
    pub fn new() -> io::Result<Wake> {
        // SAFETY: no pointers; the descriptor is owned below.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: fd was just returned open by the kernel.
        Ok(Wake { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: no timeout); returns which
/// are readable.
pub fn poll(fds: &[i32], timeout: Option<Duration>) -> Vec<bool> {
    let mut polled: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = timeout.map(|t| t.as_millis().min(i32::MAX as u128) as i32 + i32::from(t.subsec_micros() % 1000 != 0)).unwrap_or(-1);
    // SAFETY: polled is a valid array of polled.len() pollfd structs.
    let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms) };
    polled.iter().map(|p| n > 0 && p.revents != 0).collect()
}

/// The coarse real-time clock in nanoseconds since the epoch: the clock the kernel stamps file
/// times with, so a file changed after this reading has a time at or after it.
pub fn coarse_now_ns() -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(wd: i32, mask: u32, cookie: u32, name: &[u8], len: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [wd as u32, mask, cookie, len as u32] {
            b.extend(w.to_ne_bytes());
        }
        let mut padded = name.to_vec();
        padded.resize(len, 0);
        b.extend(padded);
        b
    }

    #[test]
    fn parses_records_with_and_without_names() {
        let mut buf = record(1, libc::IN_CREATE, 0, b"file.txt", 16);
        buf.extend(record(2, libc::IN_DELETE_SELF, 0, b"", 0));
        buf.extend(record(3, libc::IN_MOVED_TO, 7, b"x", 16));
        buf.extend(&record(4, 0, 0, b"truncated", 16)[..20]);
        let events = parse(&buf);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0], Event { wd: 1, mask: libc::IN_CREATE, cookie: 0, name: Some(OsStr::new("file.txt")) });
        assert_eq!(events[1].name, None);
        assert_eq!((events[2].cookie, events[2].name), (7, Some(OsStr::new("x"))));
    }
}
