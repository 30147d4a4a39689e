//! Temporary files and directories under the system's temporary directory,
//! named after the test process, and removed when dropped (also when the
//! test fails).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A file `safesock-TAG-PID` in the temporary directory, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Creates (or replaces) the file of `tag` with `contents`.
    #[track_caller]
    pub fn new(tag: &str, contents: impl AsRef<[u8]>) -> TempFile {
        let path = std::env::temp_dir().join(format!("safesock-{tag}-{}", std::process::id()));
        std::fs::write(&path, contents).expect("write a temporary file");
        TempFile(path)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh directory `safesock-TAG-PID-N` in the temporary directory,
/// removed with everything in it when dropped; the removal must succeed
/// unless the thread is already panicking. The name is kept short, so that
/// socket paths in it fit `sun_path`.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates the directory (never one that exists already, say from an
    /// earlier run that had the same process id).
    #[track_caller]
    pub fn new(tag: &str) -> TempDir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        loop {
            let n = MADE.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("safesock-{tag}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("create the temporary directory {}: {e}", path.display()),
            }
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to the file `name` in it; returns the file's path.
    #[track_caller]
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a file in a temporary directory");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let removed = std::fs::remove_dir_all(&self.0);
        if !std::thread::panicking() {
            removed.expect("remove the temporary directory");
        }
    }
}
