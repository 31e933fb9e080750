//! Every committed corpus input (`fuzz/corpus/<target>/`, among them any
//! input that once crashed a target) run through its target: CI replays what
//! the fuzzer learnt without cargo-fuzz.

use std::path::{Path, PathBuf};

use super::{Target, TARGETS};

/// Where the fuzz crate keeps a target's corpus.
fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Run every file in `dir` through `run`: how many there were, or why the
/// replay fails (no such directory, an empty one, an input that panics).
fn replay(dir: &Path, run: Target) -> Result<usize, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut count = 0;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            return Err(format!("{} fails its target", path.display()));
        }
        count += 1;
    }
    if count == 0 {
        return Err(format!("{} is empty", dir.display()));
    }
    Ok(count)
}

#[test]
fn every_corpus_input_passes_its_target() {
    for (name, run) in TARGETS {
        let n = replay(&corpus_dir(name), *run).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(n > 0);
    }
}

/// A missing or empty corpus, or an input its target refuses, fails the replay.
#[test]
fn replay_fails_on_a_missing_or_empty_corpus_or_a_crash() {
    fn fussy(data: &[u8]) {
        assert_ne!(data, b"boom");
    }
    let dir = std::env::temp_dir().join(format!("nd-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(replay(&dir, fussy).unwrap_err().contains("nd-replay"));
    std::fs::create_dir(&dir).unwrap();
    assert!(replay(&dir, fussy).unwrap_err().contains("is empty"));
    std::fs::write(dir.join("fine"), b"fine").unwrap();
    assert_eq!(replay(&dir, fussy), Ok(1));
    std::fs::write(dir.join("crash"), b"boom").unwrap();
    assert!(replay(&dir, fussy)
        .unwrap_err()
        .contains("fails its target"));
    std::fs::remove_dir_all(&dir).unwrap();
}
