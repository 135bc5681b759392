//! Finding repositories: work trees (a `.git` directory or file) and bare repositories under the
//! configured roots, down to `max_depth`, never inside dependency and build directories, plus
//! the repositories listed explicitly. Symbolic links are not followed.

use super::config::GitConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Directories that hold other people's code or build output, never searched.
pub const SKIPPED_DIRS: &[&str] =
    &["node_modules", "target", ".venv", "venv", ".tox", "__pycache__", ".cache", ".mypy_cache", ".gradle", "bower_components", ".git"];

/// A repository to scan: its short name (the `repo` label) and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub path: PathBuf,
    /// Listed in `repos` (reported even when it cannot be opened).
    pub listed: bool,
}

/// Every repository to scan, by name. The name is the path relative to the root it was found
/// under (the root's own name when the root is a repository; a listed repository's directory
/// name); when two paths would share a name, the later one is named by its full path.
pub fn discover(cfg: &GitConfig) -> Vec<Target> {
    let mut found: Vec<Target> = Vec::new();
    for root in &cfg.roots {
        let mut here = Vec::new();
        search(cfg, root, root, 0, &mut here);
        found.extend(here);
    }
    for path in &cfg.repos {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        found.push(Target { name, path: path.clone(), listed: true });
    }
    unique(found)
}

fn unique(found: Vec<Target>) -> Vec<Target> {
    let mut by_name: BTreeMap<String, Target> = BTreeMap::new();
    let mut paths = std::collections::HashSet::new();
    for mut t in found {
        if !paths.insert(t.path.clone()) {
            continue;
        }
        if by_name.contains_key(&t.name) {
            t.name = t.path.display().to_string();
        }
        by_name.insert(t.name.clone(), t);
    }
    by_name.into_values().collect()
}

fn search(cfg: &GitConfig, root: &Path, dir: &Path, depth: usize, out: &mut Vec<Target>) {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    if depth > 0 && (cfg.excluded(dir) || cfg.excluded(rel)) {
        return;
    }
    if is_repository(dir) {
        let name = if depth == 0 {
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
        } else {
            rel.display().to_string()
        };
        out.push(Target { name, path: dir.to_path_buf(), listed: false });
        return;
    }
    if depth >= cfg.max_depth {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !SKIPPED_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        search(cfg, root, &d, depth + 1, out);
    }
}

/// A work tree (has `.git`, a directory or a gitlink file) or a bare repository (`HEAD`,
/// `objects/` and `refs/`).
pub fn is_repository(dir: &Path) -> bool {
    dir.join(".git").exists() || (dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mkrepo(p: &Path) {
        fs::create_dir_all(p.join(".git")).unwrap();
    }

    #[test]
    fn finds_work_trees_and_bare_repos_within_depth_and_skips_dependency_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("projects");
        mkrepo(&root.join("app"));
        mkrepo(&root.join("app/vendor/inner"));
        mkrepo(&root.join("group/svc"));
        mkrepo(&root.join("web/node_modules/dep"));
        mkrepo(&root.join("a/b/c/too-deep"));
        mkrepo(&root.join("old-stuff"));
        let bare = root.join("mirror.git");
        fs::create_dir_all(bare.join("objects")).unwrap();
        fs::create_dir_all(bare.join("refs")).unwrap();
        fs::write(bare.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let listed = t.path().join("elsewhere/lib");
        let cfg = GitConfig {
            roots: vec![root.clone()],
            repos: vec![listed.clone()],
            exclude: vec![super::super::config::Glob(glob::Pattern::new("old-*").unwrap())],
            ..GitConfig::default()
        };
        let got: Vec<(String, bool)> = discover(&cfg).into_iter().map(|t| (t.name, t.listed)).collect();
        let want: Vec<(String, bool)> =
            [("app", false), ("group/svc", false), ("lib", true), ("mirror.git", false)].iter().map(|(n, l)| (n.to_string(), *l)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_root_that_is_a_repo_is_named_by_its_directory_and_clashes_get_full_paths() {
        let t = tempfile::tempdir().unwrap();
        mkrepo(&t.path().join("one/x"));
        mkrepo(&t.path().join("two/x"));
        let cfg = GitConfig { roots: vec![t.path().join("one/x"), t.path().join("two")], ..GitConfig::default() };
        let got: Vec<String> = discover(&cfg).into_iter().map(|t| t.name).collect();
        assert_eq!(got, vec![t.path().join("two/x").display().to_string(), "x".to_string()]);
    }
}
