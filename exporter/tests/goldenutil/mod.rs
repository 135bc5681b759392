//! Golden-file comparison shared by the fixture tests: `UPDATE_GOLDEN=1` rewrites the file,
//! otherwise a difference fails with the first differing lines.

use std::path::Path;

/// Compares `actual` with the file `name` in `dir`.
pub fn check(dir: &Path, name: &str, actual: &str) {
    let path = dir.join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (regenerate with UPDATE_GOLDEN=1)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  want {e}\n  got  {a}", i + 1))
            .collect();
        panic!(
            "{name} differs ({} vs {} lines):\n{}\n(regenerate with UPDATE_GOLDEN=1 if the change is intended)",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}
