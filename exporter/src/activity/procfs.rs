//! Pure parsers of what the activity sampler reads: `/proc/stat`'s `cpu` line, `/proc/<pid>/stat`
//! and `status`, an sshd session process's title, and `/etc/passwd`. Reading the files is the
//! sampler's business.

/// Host CPU time in ticks from `/proc/stat`'s aggregate `cpu` line: (busy, total). Idle and
/// iowait are not busy; guest time is already inside user time and is not added again.
pub fn host_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The fields of `/proc/<pid>/stat` the sampler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidStat {
    pub comm: String,
    pub ppid: i32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// Start time after boot in clock ticks: with the pid, identifies the process across samples.
    pub start: u64,
}

/// Parses `/proc/<pid>/stat`; `comm` may hold spaces and parentheses, so it ends at the last `)`.
pub fn pid_stat(text: &str) -> Option<PidStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field n is rest[n - 3].
    let field = |n: usize| rest.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(PidStat { comm, ppid: rest.get(1)?.parse().ok()?, ticks: field(14)? + field(15)?, start: field(22)? })
}

/// The real uid from `/proc/<pid>/status`.
pub fn status_uid(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The user of an sshd session process without a terminal (`sshd: alice@notty`, its title as
/// `/proc/<pid>/cmdline` shows it). Such sessions (`ssh host cmd`, IDE remotes) get no utmp
/// record. The privileged monitor (`sshd: alice [priv]`) and pty sessions return None.
pub fn sshd_notty_user(cmdline: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(cmdline);
    let title = text.trim_end_matches(['\0', ' ']).split('\0').next()?.trim_end();
    let rest = title.strip_prefix("sshd: ").or_else(|| title.strip_prefix("sshd-session: "))?;
    let user = rest.strip_suffix("@notty")?;
    (!user.is_empty() && !user.contains([' ', '@'])).then(|| user.to_string())
}

/// Process names of sshd's session processes (OpenSSH 9.8 split the session part off as
/// `sshd-session`).
pub fn is_sshd(comm: &str) -> bool {
    comm == "sshd" || comm == "sshd-session"
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub home: String,
}

/// Parses `/etc/passwd`; malformed lines and comments are skipped.
pub fn passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(User { name: f[0].to_string(), uid: f[2].parse().ok()?, home: f[5].to_string() })
        })
        .collect()
}

/// Whether a uid is a regular user's by default: 1000 and above, but not `nobody` (65534) and up.
pub fn regular_uid(uid: u32) -> bool {
    (1000..65534).contains(&uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_counts_iowait_as_idle() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n";
        // busy = 100+5+50+1+2+3 = 161; total = 161 + 1000 + 20 = 1181 (guest not added again).
        assert_eq!(host_cpu(stat), Some((161, 1181)));
        assert_eq!(host_cpu("cpu0 1 2 3 4\n"), None);
        assert_eq!(host_cpu("cpu  1 x 3 4\n"), None);
    }

    #[test]
    fn pid_stat_with_a_hostile_comm() {
        let text = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n";
        assert_eq!(pid_stat(text), Some(PidStat { comm: "my (odd) prog".into(), ppid: 1, ticks: 280, start: 987654 }));
        assert_eq!(pid_stat("1 (init) S 0"), None);
        assert_eq!(pid_stat(""), None);
    }

    #[test]
    fn uid_is_the_real_one() {
        assert_eq!(status_uid("Name:\tsshd\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(status_uid("Name:\tx\n"), None);
    }

    #[test]
    fn notty_sessions_only() {
        assert_eq!(sshd_notty_user(b"sshd: alice@notty\0\0\0\0"), Some("alice".into()));
        assert_eq!(sshd_notty_user(b"sshd-session: bob@notty"), Some("bob".into()));
        assert_eq!(sshd_notty_user(b"sshd: alice@pts/0"), None);
        assert_eq!(sshd_notty_user(b"sshd: alice [priv]"), None);
        assert_eq!(sshd_notty_user(b"/usr/sbin/sshd\0-D\0"), None);
        assert_eq!(sshd_notty_user(b""), None);
    }

    #[test]
    fn passwd_entries() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\nbroken:x\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        let users = passwd(text);
        assert_eq!(users.len(), 3);
        assert_eq!(users[1], User { name: "alice".into(), uid: 1000, home: "/home/alice".into() });
        let regular: Vec<&str> = users.iter().filter(|u| regular_uid(u.uid)).map(|u| u.name.as_str()).collect();
        assert_eq!(regular, ["alice"]);
    }
}
