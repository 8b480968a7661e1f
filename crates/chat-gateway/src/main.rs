//! The `chat-gateway` binary: parse the command line and hand over to the library.

use clap::Parser;

/// jemalloc rather than glibc's allocator: glibc keeps memory freed by
/// closed connections in fragmented per-thread arenas for good (2,000 slow
/// clients left their ~34 MB resident after they were gone); jemalloc's
/// background thread gives unused pages back within about a second
/// (`.cargo/config.toml` sets its options).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    chat_gateway::cli::run(chat_gateway::cli::Cli::parse()).await
}
