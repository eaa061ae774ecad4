//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through
//! its target on stable Rust: what the fuzzer once found stays fixed.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (name, target) in eid_fuzz_targets::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} missing: {e}", dir.display()));
        let mut here = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name}: {} fails", path.display());
            here += 1;
        }
        assert!(here > 0, "{name}: empty corpus");
        replayed += here;
    }
    eprintln!("replayed {replayed} corpus files");
}
