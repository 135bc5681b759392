//! Where containers live in the cgroup filesystem: which layout the host uses (v2, v1, or hybrid
//! = v1 controllers plus an empty `unified` v2 tree), which cgroup paths are containers (Docker,
//! Podman, containerd/CRI-O under kubepods, optionally systemd services), and the directory walk
//! that finds them.

use std::path::{Path, PathBuf};

/// The cgroup layout found under `<sysfs>/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One unified hierarchy with every controller.
    V2 { root: PathBuf },
    /// One hierarchy per controller (`hybrid`: a v2 tree at `unified/` too, without controllers).
    V1 { controllers: V1Controllers, hybrid: bool },
}

/// The mount of each v1 controller the collector reads (`None`: not mounted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Controllers {
    pub cpu: Option<PathBuf>,
    pub cpuacct: Option<PathBuf>,
    pub memory: Option<PathBuf>,
    pub blkio: Option<PathBuf>,
    pub pids: Option<PathBuf>,
}

impl Layout {
    /// The layout under `root` (`<sysfs>/fs/cgroup`), `None` when no cgroup hierarchy is there.
    pub fn detect(root: &Path) -> Option<Layout> {
        if root.join("cgroup.controllers").exists() {
            return Some(Layout::V2 { root: root.to_path_buf() });
        }
        let find = |name: &str| find_v1_controller(root, name);
        let controllers =
            V1Controllers { cpu: find("cpu"), cpuacct: find("cpuacct"), memory: find("memory"), blkio: find("blkio"), pids: find("pids") };
        if controllers == V1Controllers::default() {
            return None;
        }
        let hybrid = root.join("unified/cgroup.controllers").exists();
        Some(Layout::V1 { controllers, hybrid })
    }

    /// The name used in logs and docs: `v2`, `v1` or `hybrid`.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::V2 { .. } => "v2",
            Layout::V1 { hybrid: false, .. } => "v1",
            Layout::V1 { hybrid: true, .. } => "hybrid",
        }
    }

    /// The hierarchy whose directories are walked to find containers (v1: memory, else cpuacct,
    /// cpu or pids, whichever is mounted).
    pub fn walk_root(&self) -> Option<&Path> {
        match self {
            Layout::V2 { root } => Some(root),
            Layout::V1 { controllers: c, .. } => c.memory.as_deref().or(c.cpuacct.as_deref()).or(c.cpu.as_deref()).or(c.pids.as_deref()),
        }
    }
}

/// A v1 controller's mount: `<root>/<name>`, or a co-mounted directory such as `cpu,cpuacct`.
fn find_v1_controller(root: &Path, name: &str) -> Option<PathBuf> {
    let direct = root.join(name);
    if direct.join("cgroup.procs").exists() {
        return Some(direct);
    }
    let entries = std::fs::read_dir(root).ok()?;
    entries.flatten().map(|e| e.path()).find(|p| {
        let dir_name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        dir_name.split(',').any(|c| c == name) && p.join("cgroup.procs").exists()
    })
}

/// Who runs a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Podman,
    /// containerd or CRI-O under `kubepods`.
    Cri,
    /// A systemd service under `system.slice` (only when enabled).
    Systemd,
}

/// A container cgroup: its path relative to the hierarchy root (`/docker/<id>`, the `id` label),
/// the runtime, and where in the path the container id is (the unit name for a systemd service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: String,
    pub runtime: Runtime,
    id: std::ops::Range<usize>,
}

impl Found {
    /// The container id (the unit name for a systemd service).
    pub fn id(&self) -> &str {
        &self.path[self.id.clone()]
    }
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether the cgroup at `path` (relative, `/`-separated, leading `/`) is a container, and which.
pub fn classify(path: &str, systemd_services: bool) -> Option<Found> {
    let (parent, leaf) = path.rsplit_once('/')?;
    let kube = path.split('/').any(|c| c.starts_with("kubepods"));
    // `id` is a part of `path`: its offset in it.
    let found = |runtime, id: &str| {
        let start = id.as_ptr() as usize - path.as_ptr() as usize;
        Some(Found { path: path.to_string(), runtime, id: start..start + id.len() })
    };
    let scoped =
        |prefix: &str| leaf.strip_prefix(prefix).map(|rest| rest.strip_suffix(".scope").unwrap_or(rest)).filter(|id| is_container_id(id));
    if let Some(id) = scoped("docker-") {
        return found(if kube { Runtime::Cri } else { Runtime::Docker }, id);
    }
    if let Some(id) = scoped("libpod-") {
        return found(Runtime::Podman, id);
    }
    if let Some(id) = scoped("cri-containerd-").or_else(|| scoped("crio-")) {
        return found(Runtime::Cri, id);
    }
    if is_container_id(leaf) {
        if kube {
            return found(Runtime::Cri, leaf);
        }
        if parent.rsplit('/').next() == Some("docker") {
            return found(Runtime::Docker, leaf);
        }
    }
    if systemd_services && parent == "/system.slice" && leaf.ends_with(".service") {
        return found(Runtime::Systemd, leaf);
    }
    None
}

/// How deep the walk goes below the root (kubepods' systemd layout needs 4 levels).
const MAX_DEPTH: usize = 8;

/// Every container cgroup below `root`, sorted by path. Container cgroups are not descended into
/// (their children are the container's own business), so the walk reads only the directories
/// that hold containers.
pub fn discover(root: &Path, systemd_services: bool) -> Vec<Found> {
    let mut out = Vec::new();
    let mut rel = String::new();
    walk(root, &mut rel, 0, systemd_services, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(dir: &Path, rel: &mut String, depth: usize, systemd_services: bool, out: &mut Vec<Found>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let len = rel.len();
        rel.push('/');
        rel.push_str(name);
        if let Some(found) = classify(rel, systemd_services) {
            out.push(found);
        } else if depth + 1 < MAX_DEPTH {
            walk(&entry.path(), rel, depth + 1, systemd_services, out);
        }
        rel.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    fn runtime(path: &str) -> Option<Runtime> {
        classify(path, false).map(|f| {
            assert_eq!(f.id(), ID, "{path}");
            f.runtime
        })
    }

    #[test]
    fn recognises_every_runtime_layout() {
        assert_eq!(runtime(&format!("/docker/{ID}")), Some(Runtime::Docker));
        assert_eq!(runtime(&format!("/system.slice/docker-{ID}.scope")), Some(Runtime::Docker));
        assert_eq!(runtime(&format!("/machine.slice/libpod-{ID}.scope")), Some(Runtime::Podman));
        assert_eq!(runtime(&format!("/libpod_parent/libpod-{ID}")), Some(Runtime::Podman));
        assert_eq!(runtime(&format!("/kubepods/burstable/pod1234-5678/{ID}")), Some(Runtime::Cri));
        assert_eq!(
            runtime(&format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-{ID}.scope")),
            Some(Runtime::Cri)
        );
        assert_eq!(runtime(&format!("/kubepods.slice/kubepods-pod12.slice/crio-{ID}.scope")), Some(Runtime::Cri));
        assert_eq!(runtime(&format!("/kubepods.slice/kubepods-pod12.slice/docker-{ID}.scope")), Some(Runtime::Cri));
    }

    #[test]
    fn ignores_what_is_not_a_container() {
        for path in [
            "/docker".to_string(),
            "/system.slice/docker.service".to_string(),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/somewhere/{ID}"),
            format!("/docker/{}", &ID[..12]),
            format!("/docker/{}", ID.to_uppercase()),
            "/user.slice/user-0.slice".to_string(),
        ] {
            assert_eq!(classify(&path, false), None, "{path}");
        }
    }

    #[test]
    fn systemd_services_only_when_asked() {
        assert_eq!(classify("/system.slice/nginx.service", false), None);
        let f = classify("/system.slice/nginx.service", true).unwrap();
        assert_eq!((f.runtime, f.id()), (Runtime::Systemd, "nginx.service"));
        assert_eq!(classify("/system.slice/a.slice/b.service", true), None);
    }

    #[test]
    fn detects_layouts_and_walks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(Layout::detect(root), None);
        for d in ["cpu,cpuacct", "memory", "unified"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            std::fs::write(root.join(d).join("cgroup.procs"), "").unwrap();
        }
        let layout = Layout::detect(root).unwrap();
        assert_eq!(layout.name(), "v1");
        let Layout::V1 { controllers, .. } = &layout else { panic!() };
        assert_eq!(controllers.cpuacct.as_deref(), Some(root.join("cpu,cpuacct").as_path()));
        assert_eq!(controllers.blkio, None);
        std::fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
        assert_eq!(Layout::detect(root).unwrap().name(), "hybrid");
        let mem = root.join("memory");
        std::fs::create_dir_all(mem.join(format!("docker/{ID}/nested"))).unwrap();
        std::fs::create_dir_all(mem.join("system.slice/cron.service")).unwrap();
        let found = discover(&mem, true);
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec![format!("/docker/{ID}").as_str(), "/system.slice/cron.service"]);
        std::fs::write(root.join("cgroup.controllers"), "").unwrap();
        assert_eq!(Layout::detect(root).unwrap().name(), "v2");
    }
}
