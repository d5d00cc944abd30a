//! Fuzzing of every decoder the service exposes to the network: each dialect's request
//! decoding, the XML reader and the gRPC request conversion ([`targets`]).
//!
//! A proptest harness on the stable toolchain (cargo-fuzz's libFuzzer needs nightly, which
//! the project's test command does not use): inputs are arbitrary bytes or mutations of the
//! committed corpus (`fuzz/corpus/<target>/`). `scripts/fuzz SECONDS` runs
//! [`fuzz_for_cart_fuzz_seconds`] for that long; an input that breaks a target is shrunk,
//! written to `fuzz/regressions/<target>/` (commit it with the fix), and fails the run. The
//! test command replays the corpus and every kept regression
//! ([`the_corpus_and_every_kept_crash_replay`]) and runs a short round of each target
//! ([`every_target_survives_a_short_run`]).

mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use sha2::{Digest, Sha256};

use self::targets::{TARGETS, Target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none when it does not exist).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map_while(Result::ok).map(|e| e.path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.retain(|p| p.is_file());
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Byte sequences that decoders treat specially, spliced in by mutations.
const TOKENS: [&[u8]; 16] = [
    b"<!DOCTYPE x [<!ENTITY e \"e\">]>",
    b"&e;",
    b"&#x0;",
    b"&amp;",
    b"<![CDATA[",
    b"]]>",
    b"\"account\":",
    b"%2B",
    b"%",
    b"&an=",
    b"{\"orderNumber\":",
    b"\\u0000",
    b"\xff\xfe",
    b"\xf0\x9f\x9b\x92",
    b"\n",
    b"=",
];

/// One edit of an input: overwrite, insert or delete a byte, splice a token in, repeat a
/// slice, or cut the tail.
#[derive(Debug, Clone)]
enum Edit {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Token(prop::sample::Index, prop::sample::Index),
    Repeat(prop::sample::Index, u8, u8),
    Truncate(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(i, t)| Edit::Token(i, t)),
        (any::<prop::sample::Index>(), 1u8..32, 1u8..64)
            .prop_map(|(i, l, n)| Edit::Repeat(i, l, n)),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let at = |i: &prop::sample::Index, len: usize| i.index(len + 1).min(len);
        match edit {
            Edit::Set(i, b) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Edit::Insert(i, b) => bytes.insert(at(i, bytes.len()), *b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i.index(bytes.len()));
            }
            Edit::Token(i, t) => {
                let token = TOKENS[t.index(TOKENS.len())];
                let i = at(i, bytes.len());
                bytes.splice(i..i, token.iter().copied());
            }
            Edit::Repeat(i, len, times) if !bytes.is_empty() => {
                let start = i.index(bytes.len());
                let end = (start + usize::from(*len)).min(bytes.len());
                let slice = bytes[start..end].to_vec();
                for _ in 0..*times {
                    bytes.splice(end..end, slice.iter().copied());
                }
            }
            Edit::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            _ => {}
        }
    }
    bytes
}

/// Arbitrary bytes (one in five) or a corpus entry with up to 8 edits.
fn input(corpus: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let arbitrary = proptest::collection::vec(any::<u8>(), 0..512);
    if corpus.is_empty() {
        return arbitrary.boxed();
    }
    let mutated = (
        prop::sample::select(corpus),
        proptest::collection::vec(edit(), 1..8),
    )
        .prop_map(|(seed, edits)| apply(seed, &edits));
    prop_oneof![1 => arbitrary, 4 => mutated].boxed()
}

fn corpus_of(target: &Target) -> Vec<Vec<u8>> {
    ["corpus", "regressions"]
        .iter()
        .flat_map(|kind| inputs(kind, target.name))
        .map(|(_, bytes)| bytes)
        .collect()
}

/// Keeps a (shrunk) failing input as a regression case; returns its path.
fn keep(target: &Target, bytes: &[u8]) -> PathBuf {
    let dir = fuzz_dir().join("regressions").join(target.name);
    std::fs::create_dir_all(&dir).unwrap();
    let digest = Sha256::digest(bytes);
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `cases` inputs through `target`; a failure is kept and reported.
fn round(target: &Target, strategy: &BoxedStrategy<Vec<u8>>, cases: u32) -> Result<(), String> {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let run = target.run;
    let outcome = runner.run(strategy, |bytes| {
        std::panic::catch_unwind(|| run(&bytes))
            .map_err(|_| TestCaseError::fail("the target panicked"))
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, bytes)) => {
            let path = keep(target, &bytes);
            Err(format!(
                "{}: {reason}; input kept as {} ({} bytes)",
                target.name,
                path.display(),
                bytes.len()
            ))
        }
        Err(TestError::Abort(reason)) => Err(format!("{}: aborted: {reason}", target.name)),
    }
}

/// Every corpus entry and every kept crash goes through its target without breaking it.
#[test]
fn the_corpus_and_every_kept_crash_replay() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for target in &TARGETS {
        let corpus = inputs("corpus", target.name);
        assert!(!corpus.is_empty(), "fuzz/corpus/{} has seeds", target.name);
        for (path, bytes) in corpus.iter().chain(&inputs("regressions", target.name)) {
            replayed += 1;
            if std::panic::catch_unwind(|| (target.run)(bytes)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that break their target: {failures:?}"
    );
    println!("replayed {replayed} inputs");
}

/// A short round of every target on each test run (the long runs are `scripts/fuzz`'s).
#[test]
fn every_target_survives_a_short_run() {
    for target in &TARGETS {
        let strategy = input(corpus_of(target));
        round(target, &strategy, 128).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// `scripts/fuzz SECONDS`: every target in turn, in rounds of 500 inputs, until
/// `CART_FUZZ_SECONDS` have passed; prints the inputs run per target.
#[test]
#[ignore = "run by scripts/fuzz for a bounded time"]
fn fuzz_for_cart_fuzz_seconds() {
    let seconds: u64 = std::env::var("CART_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let strategies: Vec<_> = TARGETS.iter().map(|t| input(corpus_of(t))).collect();
    let mut runs = [0u64; TARGETS.len()];
    // The panics the harness catches would each print a message and a backtrace.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    while Instant::now() < deadline && failures.is_empty() {
        for (i, target) in TARGETS.iter().enumerate() {
            if let Err(failure) = round(target, &strategies[i], 500) {
                failures.push(failure);
            }
            runs[i] += 500;
        }
    }
    std::panic::set_hook(quiet);
    for (target, runs) in TARGETS.iter().zip(runs) {
        println!("fuzz {}: {runs} inputs", target.name);
    }
    assert!(failures.is_empty(), "{failures:?}");
}
