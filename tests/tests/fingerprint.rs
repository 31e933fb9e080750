#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fingerprint the hub prints equals what OpenSSH computes.

use nextdeploy_tests::*;

#[test]
fn printed_fingerprint_matches_ssh_keyscan() {
    let hub = start_hub().unwrap();
    assert!(
        hub.fingerprint.starts_with("SHA256:"),
        "{}",
        hub.fingerprint
    );
    // OpenSSH prints unpadded base64 of 32 bytes: 43 characters
    assert_eq!(
        hub.fingerprint.len(),
        "SHA256:".len() + 43,
        "{}",
        hub.fingerprint
    );
    let seen = keyscan_fingerprint(hub.ssh_port).unwrap();
    assert_eq!(seen, hub.fingerprint);
}

#[test]
fn host_key_is_private_and_kept() {
    use std::os::unix::fs::PermissionsExt;
    let mut hub = start_hub().unwrap();
    // the admin token file and any key file are 0600
    for (p, _) in read_tree(&hub.data_dir).unwrap() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("key") || name == "initial-admin-token" {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", p.display());
        }
    }
    let fp = hub.fingerprint.clone();
    hub.restart().unwrap();
    assert_eq!(hub.fingerprint, fp);
}
