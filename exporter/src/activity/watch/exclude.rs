//! The watcher's exclude globs (`activity.exclude`), matched against paths relative to a root.
//!
//! - A trailing `/` makes a pattern match directories only (`.git/`, `node_modules/`); an excluded
//!   directory is neither watched nor scanned, so nothing below it counts.
//! - A pattern without any other `/` matches an entry's name at any depth (`.git/` is every `.git`
//!   directory in the tree, `*.swp` every swap file).
//! - A pattern with a `/` inside (or a leading `/`) matches the whole relative path
//!   (`docs/build/`, `/scratch/*.tmp`); `*` does not cross `/`, `**` does.

use glob::{MatchOptions, Pattern, PatternError};
use std::path::Path;

const OPTIONS: MatchOptions = MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    dirs_only: bool,
    /// Matched against the whole relative path rather than the name.
    anchored: bool,
}

/// A compiled set of exclude globs.
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    rules: Vec<Rule>,
}

impl Exclude {
    /// Compiles the globs; an invalid one is an error naming it.
    pub fn new(globs: &[String]) -> Result<Exclude, (String, PatternError)> {
        let mut rules = Vec::new();
        for glob in globs {
            let dirs_only = glob.ends_with('/');
            let body = glob.trim_end_matches('/');
            let anchored = body.contains('/');
            let body = body.trim_start_matches('/');
            if body.is_empty() {
                continue;
            }
            let pattern = Pattern::new(body).map_err(|e| (glob.clone(), e))?;
            rules.push(Rule { pattern, dirs_only, anchored });
        }
        Ok(Exclude { rules })
    }

    /// Whether the entry at `rel` (relative to its root) is excluded. Only the entry itself is
    /// matched: its ancestors were checked when the walk or the watches reached it.
    pub fn excludes(&self, rel: &Path, is_dir: bool) -> bool {
        let name = rel.file_name().map(Path::new).unwrap_or(rel);
        self.rules.iter().any(|r| {
            if r.dirs_only && !is_dir {
                return false;
            }
            let subject = if r.anchored { rel } else { name };
            r.pattern.matches_path_with(subject, OPTIONS)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(globs: &[&str]) -> Exclude {
        Exclude::new(&globs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn directory_patterns_match_at_any_depth_and_only_directories() {
        let e = ex(&[".git/", "node_modules/", "target/"]);
        assert!(e.excludes(Path::new(".git"), true));
        assert!(e.excludes(Path::new("proj/.git"), true));
        assert!(e.excludes(Path::new("a/b/node_modules"), true));
        assert!(!e.excludes(Path::new("proj/.git"), false), "a file named .git (a worktree link) is not a directory");
        assert!(!e.excludes(Path::new("proj/.github"), true));
        assert!(!e.excludes(Path::new("proj/src/main.rs"), false));
        assert!(!e.excludes(Path::new("proj/targets"), true));
    }

    #[test]
    fn name_globs_match_files_anywhere() {
        let e = ex(&["*.swp", "~*"]);
        assert!(e.excludes(Path::new("a/.main.rs.swp"), false));
        assert!(e.excludes(Path::new("x.swp"), true));
        assert!(e.excludes(Path::new("deep/er/~lock"), false));
        assert!(!e.excludes(Path::new("a/main.rs"), false));
    }

    #[test]
    fn patterns_with_a_slash_match_the_relative_path() {
        let e = ex(&["docs/build/", "/scratch/*.tmp", "logs/**/*.log"]);
        assert!(e.excludes(Path::new("docs/build"), true));
        assert!(!e.excludes(Path::new("proj/docs/build"), true), "anchored at the root");
        assert!(e.excludes(Path::new("scratch/a.tmp"), false));
        assert!(!e.excludes(Path::new("scratch/sub/a.tmp"), false), "* does not cross /");
        assert!(e.excludes(Path::new("logs/x/y/z.log"), false));
    }

    #[test]
    fn invalid_and_empty_globs() {
        let err = Exclude::new(&["a[".to_string()]).unwrap_err();
        assert_eq!(err.0, "a[");
        assert!(!ex(&["/", ""]).excludes(Path::new("a"), true));
    }
}
