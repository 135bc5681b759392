//! `uname`: `node_uname_info` with the labels of the uname system call, as node_exporter.

use super::{CollectError, Collector, Context};
use fleetwatch_common::expfmt::Family;
use std::ffi::CStr;

pub struct Uname;

pub fn build(_: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Uname))
}

fn field(raw: &[libc::c_char]) -> String {
    // SAFETY: the kernel NUL-terminates every utsname field within its array.
    unsafe { CStr::from_ptr(raw.as_ptr()) }.to_string_lossy().into_owned()
}

impl Collector for Uname {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uname fills the struct we own.
        if unsafe { libc::uname(&mut u) } != 0 {
            return Err(CollectError::Other(format!("uname: {}", std::io::Error::last_os_error())));
        }
        let mut f = Family::gauge("node_uname_info", "Labeled system information as provided by the uname system call.");
        f.add(
            &[
                ("domainname", &field(&u.domainname)),
                ("machine", &field(&u.machine)),
                ("nodename", &field(&u.nodename)),
                ("release", &field(&u.release)),
                ("sysname", &field(&u.sysname)),
                ("version", &field(&u.version)),
            ],
            1.0,
        );
        out.push(f);
        Ok(())
    }
}
