//! `eid token code`: the CLI playing a code device from its PSKC file,
//! offline, checked against RFC 6238's test values; the pre-shared key only
//! from a file or the environment.

use eid_server::code_devices::pskc::build::batch_document;
use eid_server::code_devices::totp::{Algorithm, Params};
use serde_json::Value;

use crate::support::eid_command;

const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

fn eid(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let out = eid_command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(stdout.trim()).unwrap(),
    )
}

#[test]
fn token_code_plays_the_device_of_a_pskc_file_at_the_rfc6238_times() {
    let dir = tempfile::tempdir().unwrap();
    let mut key = [0u8; 16];
    hex::decode_to_slice(KEY_HEX, &mut key).unwrap();
    let params = Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        step_secs: 30,
    };
    let file = dir.path().join("batch.pskc");
    std::fs::write(
        &file,
        batch_document(&key, "t", &[("CD-1", params, b"12345678901234567890")]),
    )
    .unwrap();
    let key_file = dir.path().join("psk");
    std::fs::write(&key_file, KEY_HEX).unwrap();
    let file = file.to_str().unwrap();
    // RFC 6238 appendix B, SHA-1: the last six of the eight digits.
    for (at_ms, code) in [("59000", "287082"), ("1111111109000", "081804")] {
        let (status, json) = eid(
            &[
                "--json", "token", "code", "--serial", "CD-1", "--pskc", file, "--at-ms", at_ms,
            ],
            &[("EID_PSKC_KEY", KEY_HEX)],
        );
        assert_eq!(status, 0, "{json}");
        assert_eq!(json["code"], code);
    }
    let (status, json) = eid(
        &[
            "--json",
            "token",
            "code",
            "--serial",
            "CD-1",
            "--pskc",
            file,
            "--at-ms",
            "59000",
            "--pre-shared-key-file",
            key_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(status, 0, "{json}");
    assert_eq!(json["next_code_at_ms"], 60_000);
    // Another key: the file is refused (its MACs do not match).
    let (status, json) = eid(
        &[
            "--json", "token", "code", "--serial", "CD-1", "--pskc", file,
        ],
        &[("EID_PSKC_KEY", "ffffffffffffffffffffffffffffffff")],
    );
    assert_ne!(status, 0);
    assert_eq!(json["error"]["kind"], "invalid_argument");
    // A key on the command line is refused and not echoed.
    let (status, json) = eid(
        &[
            "--json",
            "token",
            "code",
            "--serial",
            "CD-1",
            "--pskc",
            file,
            "--pre-shared-key",
            KEY_HEX,
        ],
        &[],
    );
    assert_eq!(status, 2);
    assert!(!json.to_string().contains(KEY_HEX));
}
