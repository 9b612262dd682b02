//! The fuzz targets' inputs replayed on every test run: each target's seeds (the fixtures
//! `scripts/fuzz` seeds it with) and every input a fuzzer ever crashed on
//! (`fuzz/regressions/TARGET/`), through the same entry points the fuzzers drive.

use std::path::{Path, PathBuf};

use optsync::fuzzing::{Target, run};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    out.sort();
    out
}

/// What `scripts/fuzz` seeds a target's corpus with.
fn seeds(t: Target) -> Vec<PathBuf> {
    let fixtures = root().join("crates/optsync/tests/fixtures");
    let name = t.name();
    match t {
        Target::XmlRpc | Target::KeapPost => files(&root().join("fuzz/seeds").join(&name), ""),
        Target::SnsStringToSign => files(&fixtures.join("sns"), ""),
        Target::Provider(p) => files(&fixtures.join("esp"), &format!("{}-", p.name())),
        Target::Config => vec![root().join("optsync.example.toml")],
    }
}

#[test]
fn every_fuzz_target_replays_its_seeds_and_past_crashes() {
    for t in Target::all() {
        let name = t.name();
        assert!(
            root()
                .join("fuzz/fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
        let mut inputs = seeds(t);
        assert!(!inputs.is_empty(), "{name} has no seed");
        inputs.extend(files(&root().join("fuzz/regressions").join(&name), ""));
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            run(t, &data);
            // Truncations and single-byte damage of each seed, as a fuzzer's first steps.
            for cut in [data.len() / 2, data.len().saturating_sub(1)] {
                run(t, &data[..cut]);
            }
            let mut flipped = data.clone();
            if let Some(b) = flipped.get_mut(data.len() / 3) {
                *b ^= 0x80;
            }
            run(t, &flipped);
        }
    }
}
