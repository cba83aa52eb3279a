// jemalloc rather than glibc's malloc: glibc keeps memory freed by one thread in that
// thread's arena and raises its mmap threshold after the first large free, so the
// argon2 workspaces the hashing threads give back when idle (19 MiB each) stayed
// resident; jemalloc returns them, and fragments less under many small short-lived
// allocations (`scripts/bench`: peak RSS 123.7 -> 107.0 MiB, RSS between cells
// about 68 -> 30 MiB).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    identity::cli::run().await
}
