//! The health monitor's kernel files, kept open from one sweep to the next
//! and read again in place (`pread` at offset 0) instead of opened by path
//! every interval: opening and closing a cgroup or proc file (the path walk,
//! the dentry, the security hooks) cost the agent about as much as reading
//! it, seven files per container every 5 s.
//!
//! An open file never reads stale figures in place of failing: a cgroup file
//! whose cgroup was removed fails with ENODEV, and `/proc/<pid>/...` belongs
//! to the process it was opened for (a reused pid is a new path) and fails
//! once it has exited. A read that fails closes the file; the next sweep
//! opens it by path again. Files not read during a sweep (a container gone
//! or restarted under a new pid) are closed when the next sweep begins.

use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::limits::{FILE_READ_START, MAX_FILE_LEN, MAX_OPEN_FILES};

/// Open files by path.
#[derive(Debug, Default)]
pub struct Files {
    /// Read this sweep.
    open: HashMap<PathBuf, File>,
    /// Read last sweep and not yet this one.
    previous: HashMap<PathBuf, File>,
    /// Where files are read into.
    buf: Vec<u8>,
}

impl Files {
    /// A new sweep: files not read since the last call are closed.
    pub fn begin(&mut self) {
        self.previous = std::mem::take(&mut self.open);
    }

    /// Files open now.
    pub fn open_count(&self) -> usize {
        self.open.len() + self.previous.len()
    }

    /// `path`'s whole text; `None` when it cannot be read.
    pub fn read(&mut self, path: &Path) -> Option<String> {
        let file = match self.previous.remove(path) {
            Some(f) => f,
            None => File::open(path).ok()?,
        };
        let text = read_at_start(&file, &mut self.buf)?;
        if self.open_count() < MAX_OPEN_FILES {
            self.open.insert(path.to_path_buf(), file);
        }
        Some(text)
    }
}

/// The file's text from offset 0, through `buf`.
fn read_at_start(file: &File, buf: &mut Vec<u8>) -> Option<String> {
    buf.clear();
    buf.resize(FILE_READ_START, 0);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() >= MAX_FILE_LEN {
                return None;
            }
            buf.resize(buf.len() * 2, 0);
        }
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    std::str::from_utf8(&buf[..len]).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nd-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_kept_file_reads_its_new_text_and_unread_ones_close() {
        let d = scratch("keep");
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::write(&a, "1\n").unwrap();
        std::fs::write(&b, "x").unwrap();
        let mut files = Files::default();
        files.begin();
        assert_eq!(files.read(&a).as_deref(), Some("1\n"));
        assert_eq!(files.read(&b).as_deref(), Some("x"));
        assert_eq!(files.open_count(), 2);
        // Rewritten in place, as the kernel's files change: the new text,
        // through the same open file (the path is gone, the file is not).
        std::fs::write(&a, "22\n").unwrap();
        let kept = d.join("a-moved");
        std::fs::rename(&a, &kept).unwrap();
        files.begin();
        assert_eq!(files.read(&a).as_deref(), Some("22\n"));
        // b was not read in that sweep: closed when the next one begins.
        files.begin();
        assert_eq!(files.open_count(), 1);
        assert_eq!(files.read(&a).as_deref(), Some("22\n"));
        assert_eq!(files.open_count(), 1);
    }

    #[test]
    fn a_missing_or_unreadable_file_is_none_and_not_kept() {
        let d = scratch("missing");
        let mut files = Files::default();
        files.begin();
        assert_eq!(files.read(&d.join("nope")), None);
        // A directory opens but does not read.
        assert_eq!(files.read(&d), None);
        assert_eq!(files.open_count(), 0);
        // Longer than one buffer: read whole.
        let long = "y".repeat(10_000);
        std::fs::write(d.join("long"), &long).unwrap();
        assert_eq!(files.read(&d.join("long")), Some(long));
        // Past the limit: refused, not cut.
        std::fs::write(d.join("huge"), vec![b'z'; MAX_FILE_LEN + 1]).unwrap();
        assert_eq!(files.read(&d.join("huge")), None);
    }

    /// The kernel's own files: read again in place they are made anew, and
    /// a process's file fails once the process is gone (not stale figures).
    #[test]
    fn proc_files_read_anew_and_fail_after_their_process() {
        let rchar = |t: &str| -> u64 {
            t.lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let mut files = Files::default();
        let io = PathBuf::from(format!("/proc/{}/io", std::process::id()));
        files.begin();
        let first = rchar(&files.read(&io).unwrap());
        files.begin();
        let second = rchar(&files.read(&io).unwrap());
        assert!(
            second > first,
            "rchar {first} -> {second}: read in place, not anew"
        );

        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let cgroup = PathBuf::from(format!("/proc/{}/cgroup", child.id()));
        files.begin();
        assert!(files.read(&cgroup).is_some());
        child.kill().unwrap();
        child.wait().unwrap();
        files.begin();
        assert_eq!(files.read(&cgroup), None);
        assert_eq!(files.open_count(), 0);
    }

    #[test]
    fn no_more_than_the_limit_stays_open() {
        let d = scratch("limit");
        let mut files = Files::default();
        files.begin();
        for i in 0..MAX_OPEN_FILES + 10 {
            let p = d.join(i.to_string());
            std::fs::write(&p, "1").unwrap();
            assert_eq!(files.read(&p).as_deref(), Some("1"));
        }
        assert_eq!(files.open_count(), MAX_OPEN_FILES);
    }
}
