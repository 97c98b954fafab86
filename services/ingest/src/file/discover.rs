//! Which files to tail: the configured paths and globs, expanded now (so files created while the
//! service runs are found at the next look), less the excluded names (compressed rotations).

use std::path::{Path, PathBuf};

/// The configured patterns, checked once.
#[derive(Debug, Clone)]
pub struct Patterns {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
}

impl Patterns {
    /// `include`: paths or globs; `exclude`: globs matched against file names. The error names
    /// the pattern at fault.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        for pattern in include {
            glob::Pattern::new(pattern).map_err(|e| format!("{pattern:?}: {e}"))?;
        }
        let exclude = exclude
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|e| format!("{p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            include: include.to_vec(),
            exclude,
        })
    }

    /// The regular files the patterns name now, sorted, each once; paths that cannot be read
    /// (a directory without permission) are returned as errors beside them.
    pub fn expand(&self) -> (Vec<PathBuf>, Vec<String>) {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for entry in paths {
                match entry {
                    Ok(path) if path.is_file() && !self.excluded(&path) => found.push(path),
                    Ok(_) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        found.sort();
        found.dedup();
        (found, errors)
    }

    fn excluded(&self, path: &Path) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy());
        name.is_some_and(|name| self.exclude.iter().any(|p| p.matches(&name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_find_files_and_exclusions_leave_some_out() {
        let dir = std::env::temp_dir().join(format!("logstream-discover-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        for name in ["a.log", "a.log.1", "a.log.2.gz", "b.txt"] {
            std::fs::write(dir.join(name), "x\n").expect("write");
        }
        let include = [format!("{}/a.log*", dir.display())];
        let patterns = Patterns::new(&include, &["*.gz".to_owned()]).expect("patterns");
        let (found, errors) = patterns.expand();
        let names: Vec<_> = found
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["a.log", "a.log.1"]);
        assert!(errors.is_empty());
        assert!(Patterns::new(&["a[".to_owned()], &[]).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
