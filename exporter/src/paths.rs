//! The injected filesystem roots (`--path.procfs`, `--path.sysfs`, `--path.rootfs`,
//! `--path.udev.data`) through which every collector reads, so the exporter can run in a
//! container with host mounts or against a recorded tree.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub udev_data: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
            udev_data: PathBuf::from("/run/udev/data"),
        }
    }
}

impl Paths {
    /// All four roots under one recorded tree (`proc/`, `sys/`, `root/`, `udev/`).
    pub fn under(dir: &Path) -> Paths {
        Paths { procfs: dir.join("proc"), sysfs: dir.join("sys"), rootfs: dir.join("root"), udev_data: dir.join("udev") }
    }

    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }

    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }

    /// A host path (absolute, as the host sees it) under the root filesystem.
    pub fn root(&self, host_path: &str) -> PathBuf {
        self.rootfs.join(host_path.trim_start_matches('/'))
    }

    /// The host's view of a mount point read from a mount table: the rootfs prefix removed when
    /// the table was written from inside the container (node_exporter's rootfsStripPrefix).
    pub fn strip_rootfs(&self, mount_point: &str) -> String {
        let root = self.rootfs.to_string_lossy();
        if root == "/" {
            return mount_point.to_string();
        }
        match mount_point.strip_prefix(root.trim_end_matches('/')) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => mount_point.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_rootfs_prefix_only_on_boundaries() {
        let p = Paths { rootfs: PathBuf::from("/host"), ..Paths::default() };
        assert_eq!(p.strip_rootfs("/host"), "/");
        assert_eq!(p.strip_rootfs("/host/boot"), "/boot");
        assert_eq!(p.strip_rootfs("/hostile"), "/hostile");
        assert_eq!(p.root("/boot"), PathBuf::from("/host/boot"));
        assert_eq!(Paths::default().strip_rootfs("/boot"), "/boot");
    }
}
