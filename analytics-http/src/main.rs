//! `analytics-server`: the analytics HTTP API as a process. See [`analytics_http::server`].

use std::io::IsTerminal;

use clap::Parser;
use mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

// glibc's allocator contends between the runtime's threads under load (a fifth of the cached
// summary's CPU profile was malloc and its arena locks); mimalloc's thread-local heaps do not.
// Built with `no_thp`: mimalloc does not ask for transparent huge pages, which count whole in
// RSS however little of them is used (measured: 18 → 11 MB at start, 228 → 195 MB holding
// 200k events in the memory store). Where THP is `always` the kernel may still use them.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")))
        // Colour codes only for a person at a terminal, never into a file or a log collector.
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let cli = analytics_http::server::Cli::parse();
    match analytics_http::server::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("analytics-server: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
