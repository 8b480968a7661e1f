//! The `chat-gateway` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    chat_gateway::cli::run(chat_gateway::cli::Cli::parse()).await
}
