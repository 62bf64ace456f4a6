//! The one writer of a sweep's results.json.
//!
//! The sweep (after every point) and the SIGINT/SIGTERM cleanup (which marks the run
//! interrupted) both write the file. They share one [`Results`] behind a mutex and write it
//! whole, under the lock, with an atomic replace: the file is never half-written, never written
//! by two threads at once, keeps every finished point, and once marked interrupted stays so.

use crate::results::{Results, now_rfc3339};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// results.json and the results it holds.
#[derive(Debug, Clone)]
pub struct ResultsFile {
    path: PathBuf,
    results: Arc<Mutex<Results>>,
}

impl ResultsFile {
    /// Writes `results` to `path` and keeps them for later updates.
    pub fn create(path: &Path, results: Results) -> Result<ResultsFile> {
        results.save(path)?;
        Ok(ResultsFile {
            path: path.to_path_buf(),
            results: Arc::new(Mutex::new(results)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` and writes the file, both under the lock.
    pub fn update(&self, change: impl FnOnce(&mut Results)) -> Result<()> {
        let mut results = self.lock();
        change(&mut results);
        results.save(&self.path)
    }

    /// Marks the run interrupted (finished now) and writes the file; returns the results.
    pub fn mark_interrupted(&self) -> Result<Results> {
        let mut results = self.lock();
        results.interrupted = true;
        results.finished = Some(now_rfc3339());
        results.refresh_aggregates();
        results.save(&self.path)?;
        Ok(results.clone())
    }

    /// A copy of the results as they are now.
    pub fn snapshot(&self) -> Results {
        self.lock().clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn an_interrupted_mark_survives_later_updates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let scenario = Scenario::parse(
            "name = \"t\"\nsystems = [\"relay/pool\"]\nstreams = [10]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let results = Results::new(&scenario, Path::new("t.toml"), Default::default());
        let file = ResultsFile::create(&path, results).unwrap();
        file.mark_interrupted().unwrap();
        file.update(|r| r.finished = None).unwrap();
        let back = Results::load(&path).unwrap();
        assert!(back.interrupted);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
