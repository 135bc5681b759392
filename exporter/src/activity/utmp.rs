//! utmp records (`/run/utmp`, glibc's `struct utmp` on 64-bit Linux, 384 bytes each): the login
//! sessions that count as activity. A pure parser; reading the file and cross-checking with live
//! processes is the collector's business.

/// glibc's record size on x86_64 and aarch64.
pub const RECORD_SIZE: usize = 384;
/// `ut_type` of a normal login session.
const USER_PROCESS: i16 = 7;

/// One live login session as utmp records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    /// Terminal, e.g. `pts/0`.
    pub line: String,
    /// Remote host for network logins (SSH), empty for local ones.
    pub host: String,
    pub pid: i32,
    /// Login time, Unix seconds.
    pub login_time: i64,
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The USER_PROCESS records of a utmp file's bytes; a trailing partial record is ignored.
pub fn parse(bytes: &[u8]) -> Vec<Session> {
    bytes
        .chunks_exact(RECORD_SIZE)
        .filter(|r| i16::from_le_bytes([r[0], r[1]]) == USER_PROCESS)
        .map(|r| Session {
            pid: i32_at(r, 4),
            line: text(&r[8..40]),
            user: text(&r[44..76]),
            host: text(&r[76..332]),
            login_time: i32_at(r, 340) as i64,
        })
        .filter(|s| !s.user.is_empty())
        .collect()
}

#[cfg(test)]
pub(crate) fn record(kind: i16, pid: i32, line: &str, user: &str, host: &str, login: i32) -> Vec<u8> {
    let mut r = vec![0u8; RECORD_SIZE];
    r[0..2].copy_from_slice(&kind.to_le_bytes());
    r[4..8].copy_from_slice(&pid.to_le_bytes());
    r[8..8 + line.len()].copy_from_slice(line.as_bytes());
    r[44..44 + user.len()].copy_from_slice(user.as_bytes());
    r[76..76 + host.len()].copy_from_slice(host.as_bytes());
    r[340..344].copy_from_slice(&login.to_le_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_processes_only() {
        let mut file = record(2, 0, "~", "reboot", "6.1.0", 1_700_000_000); // BOOT_TIME
        file.extend(record(7, 4242, "pts/0", "alice", "192.0.2.7", 1_700_000_100));
        file.extend(record(8, 4243, "pts/1", "", "", 0)); // DEAD_PROCESS
        file.extend(record(7, 99, "tty1", "bob", "", 1_700_000_200));
        file.extend([0u8; 17]); // a torn write at the end
        let sessions = parse(&file);
        assert_eq!(
            sessions,
            [
                Session { user: "alice".into(), line: "pts/0".into(), host: "192.0.2.7".into(), pid: 4242, login_time: 1_700_000_100 },
                Session { user: "bob".into(), line: "tty1".into(), host: String::new(), pid: 99, login_time: 1_700_000_200 },
            ]
        );
        assert!(parse(&[]).is_empty());
    }

    #[test]
    fn full_width_fields_without_terminator() {
        let user = "u".repeat(32);
        let sessions = parse(&record(7, 1, &"l".repeat(32), &user, &"h".repeat(256), 5));
        assert_eq!(sessions[0].user, user);
        assert_eq!(sessions[0].line.len(), 32);
        assert_eq!(sessions[0].host.len(), 256);
    }

    /// /run/utmp as Debian 12's OpenSSH 9.2 (UsePAM no) left it while `fwactivity` was logged in
    /// with `ssh -tt`, and after logout (recorded by hand, see tests/fixtures/activity/README).
    #[test]
    fn recorded_openssh_login_and_logout() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/activity/");
        let during = parse(&std::fs::read(format!("{dir}utmp-logged-in")).unwrap());
        assert_eq!(during.len(), 1);
        let s = &during[0];
        assert_eq!((s.user.as_str(), s.line.as_str(), s.host.as_str()), ("fwactivity", "pts/0", "127.0.0.1"));
        // The pid is that of the session's privileged sshd process (`sshd: fwactivity [priv]`).
        assert_eq!(s.pid, 661);
        assert!(s.login_time > 1_700_000_000);
        // Logout turns the record into a DEAD_PROCESS one without a user.
        assert!(parse(&std::fs::read(format!("{dir}utmp-logged-out")).unwrap()).is_empty());
    }
}
