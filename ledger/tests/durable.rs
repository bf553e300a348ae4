//! `ledger::durable::replace` under SIGKILL: a child process replaces one
//! file with numbered versions as fast as it can and says when each one
//! is done; it is killed at a random moment, many times over. After every
//! kill the file holds one whole version, never a torn or mixed one, never
//! none, and never one older than the child last said was done.
//!
//! A kill ends the process, not the machine: what this pins is that no
//! moment of the replacement exposes anything but the old or the new file.
//! (That an fsync'd rename survives power loss is the file system's
//! promise; the directory fsync is what asks for it.)
//!
//! `DURABLE_CRASH_ROUNDS` sets the rounds (CI runs the default few);
//! `DURABLE_CRASH_SEED` replays a run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use ledger::durable::{replace, Mode};
use rand::{Rng, SeedableRng};

/// Version `n`'s contents: large enough that writing it takes several
/// system calls, and each line names its version, so a mix shows.
fn version(n: u64) -> Vec<u8> {
    let line = format!("version {n:020}\n");
    line.repeat(4096).into_bytes()
}

/// The version a file holds, or why it is no single whole version.
fn read_version(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    let first = bytes
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.strip_prefix("version "))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| format!("no version line in {} bytes", bytes.len()))?;
    if bytes != version(first) {
        return Err(format!(
            "{} bytes that are not version {first} whole",
            bytes.len()
        ));
    }
    Ok(first)
}

#[test]
fn a_killed_replacement_leaves_one_whole_version() {
    let rounds: u32 = std::env::var("DURABLE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("DURABLE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("durable crash test: {rounds} rounds, DURABLE_CRASH_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    replace(&path, &version(0), Mode::Shared).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut done = 0u64;
    let mut caught_mid_write = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "replacing_child", "--nocapture"])
            .env("DURABLE_CHILD_PATH", &path)
            .env("DURABLE_CHILD_FROM", (done + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wait_for = rng.gen_range(1..40);
        let mut seen = 0;
        while seen < wait_for {
            let line = lines.next().expect("the child reports").unwrap();
            if let Ok(n) = line.trim().parse::<u64>() {
                done = n;
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever it said after the ones read was done too.
        for line in lines.map_while(Result::ok) {
            if let Ok(n) = line.trim().parse::<u64>() {
                done = n;
            }
        }
        let found = read_version(&path)
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): the file holds {e}"));
        assert!(
            found == done || found == done + 1,
            "round {round} (seed {seed}): version {found} after {done} was done"
        );
        if found == done + 1 || ledger::durable::temporary(&path).exists() {
            caught_mid_write += 1;
        }
        done = found;
    }
    eprintln!("{caught_mid_write} of {rounds} kills came while a replacement was under way");
}

/// The child of `a_killed_replacement_leaves_one_whole_version`: replaces
/// the file with versions from `DURABLE_CHILD_FROM` on until it is killed,
/// printing each version's number once its replacement returned.
#[test]
#[ignore = "the child process of a_killed_replacement_leaves_one_whole_version"]
fn replacing_child() {
    use std::io::Write;
    let path = std::env::var("DURABLE_CHILD_PATH").expect("run by the crash test only");
    let from: u64 = std::env::var("DURABLE_CHILD_FROM")
        .unwrap()
        .parse()
        .unwrap();
    let mut out = std::io::stdout();
    for n in from.. {
        replace(Path::new(&path), &version(n), Mode::Shared).unwrap();
        writeln!(out, "{n}").unwrap();
        out.flush().unwrap();
    }
}
