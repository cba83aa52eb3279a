//! The hashing ceiling of this machine: how long one argon2id verify takes when every
//! core is busy verifying, and so how many verifies per second the cores can do at most.
//!
//! `scripts/bench` runs this next to the load test, so that `login` and `register` (one
//! argon2id hash each) can be reported as a percentage of what the hardware allows.
//!
//! ```sh
//! cargo run --release -p hash-ceiling -- --seconds 5 --threads 2
//! ```
//!
//! Prints one JSON line: `threads`, `verifies`, `mean_verify_ms` (wall time of one
//! verify on a busy core) and `ceiling_per_s` (`threads / mean verify time`).
//!
//! Each thread hashes the way `identity::security::password` does, as fast as the
//! `argon2` crate allows: argon2id v0x13 with the service's default parameters
//! (m=19456 KiB, t=2, p=1) into one block buffer allocated once per thread and reused,
//! then a comparison with the stored output. The reference is the hash alone, without
//! the service's own overhead (queueing, parsing, the database), so login and register
//! can be given as a share of it.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The service defaults (`ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`).
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// The password `scripts/bench` logs in with.
const PASSWORD: &[u8] = b"correct horse battery";

struct Args {
    seconds: f64,
    threads: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 5.0,
        threads: thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse().context("--seconds")?,
            "--threads" => args.threads = value.parse().context("--threads")?,
            _ => bail!("unknown argument {flag} (expected --seconds S, --threads N)"),
        }
    }
    if args.seconds.is_nan() || args.seconds <= 0.0 || args.threads == 0 {
        bail!("--seconds and --threads must be positive");
    }
    Ok(args)
}

fn argon2() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The raw hash of `PASSWORD` under `salt`, into `blocks` (the thread's reused memory).
fn hash_into(argon2: &Argon2, salt: &[u8], blocks: &mut [Block]) -> anyhow::Result<[u8; 32]> {
    let mut output = [0u8; 32];
    argon2
        .hash_password_into_with_memory(PASSWORD, salt, &mut output, blocks)
        .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
    Ok(output)
}

/// Verifies `PASSWORD` against `expected` until `deadline`; returns (verifies, busy time).
fn verify_loop(
    salt: &[u8],
    expected: &[u8; 32],
    deadline: Instant,
) -> anyhow::Result<(u64, Duration)> {
    let argon2 = argon2()?;
    let mut blocks = vec![Block::default(); argon2.params().block_count()];
    let start = Instant::now();
    let mut count = 0u64;
    // At least one verify per thread, so that a very short run still measures something.
    while count == 0 || Instant::now() < deadline {
        if &hash_into(&argon2, salt, &mut blocks)? != expected {
            bail!("verify: the password does not match its own hash");
        }
        count += 1;
    }
    Ok((count, start.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let salt = b"hash-ceiling-salt";
    let argon2 = argon2()?;
    let mut blocks = vec![Block::default(); argon2.params().block_count()];
    let expected = hash_into(&argon2, salt, &mut blocks)?;
    drop(blocks);

    // One verifying loop per core, all at once: the ceiling is with every core busy.
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let results: Vec<anyhow::Result<(u64, Duration)>> = thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|_| s.spawn(|| verify_loop(salt, &expected, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("verify thread panicked")))
            })
            .collect()
    });

    let (mut verifies, mut busy) = (0u64, Duration::ZERO);
    for result in results {
        let (count, elapsed) = result?;
        verifies += count;
        busy += elapsed;
    }
    // Mean wall time of one verify on a busy core; the cores together do
    // `threads / mean` verifies per second.
    let mean_s = busy.as_secs_f64() / verifies as f64;
    println!(
        "{{\"threads\":{},\"verifies\":{},\"seconds\":{:.3},\"mean_verify_ms\":{:.3},\"ceiling_per_s\":{:.2}}}",
        args.threads,
        verifies,
        busy.as_secs_f64() / args.threads as f64,
        mean_s * 1e3,
        args.threads as f64 / mean_s,
    );
    Ok(())
}
