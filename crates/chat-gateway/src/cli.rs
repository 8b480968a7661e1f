//! The `chat-gateway` command line (CONFIG.md "Command line").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::server::{self, RunOptions};

/// One normalised REST API over Spark, ccmessaging and Kchat.
#[derive(Debug, Parser)]
#[command(name = "chat-gateway", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and keep every configured account in sync.
    Serve {
        /// Config file (default: $CHATGW_CONFIG, then ./chat-gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address (overrides the file and CHATGW_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        /// Database URL (overrides the file and DATABASE_URL).
        #[arg(long)]
        database_url: Option<String>,
        /// Do not apply migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Run the gateway against built-in simulators of all three providers.
    Demo {
        /// Listen address of the gateway.
        #[arg(long)]
        listen: Option<String>,
        /// Database URL (default: embedded SQLite).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Database URL.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Validate a config file: exit 0, or print the problem and exit 2.
    CheckConfig {
        /// Config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Exit 0 when a URL answers 2xx (container health checks need no curl).
    Probe {
        /// What to ask.
        #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
    /// API key utilities.
    Key {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeyCommand,
    },
}

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print a new random key and the sha256 to put in the config.
    Generate,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colour codes only for a person at a terminal: in a file or a log
    // collector they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("configuration error: {e}");
    ExitCode::from(2)
}

fn load(
    config: Option<&std::path::Path>,
    listen: Option<String>,
    database_url: Option<String>,
) -> Result<Config, ConfigError> {
    let mut c = Config::load(config)?;
    if let Some(l) = listen {
        c.server.listen = l;
    }
    if let Some(u) = database_url {
        c.database.url = u;
    }
    c.check_addresses()?;
    Ok(c)
}

/// Runs the parsed command line; the process exit code is the result.
pub async fn run(cli: Cli) -> ExitCode {
    init_logs(cli.log_format);
    match cli.command {
        Command::Key {
            command: KeyCommand::Generate,
        } => {
            let (key, hash) = crate::api::auth::generate_key();
            println!("key:    {key}");
            println!("sha256: {hash}");
            ExitCode::SUCCESS
        }
        Command::Probe { url } => match probe(&url).await {
            Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
            Ok(status) => {
                eprintln!("{url}: HTTP {status}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("{url}: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { config } => match Config::load(Some(&config)) {
            Ok(c) => match crate::providers::Accounts::build(&c) {
                Ok(_) => {
                    println!(
                        "{}: ok ({} accounts, {} API keys)",
                        config.display(),
                        c.accounts.len(),
                        c.api_keys.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("configuration error: {}: {e}", config.display());
                    ExitCode::from(2)
                }
            },
            Err(e) => config_failure(&e),
        },
        Command::Migrate {
            config,
            database_url,
        } => {
            let c = match load(config.as_deref(), None, database_url) {
                Ok(c) => c,
                Err(e) => return config_failure(&e),
            };
            match server::open_store(&c, true).await {
                Ok(_) => {
                    println!("migrations applied");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve {
            config,
            listen,
            database_url,
            no_migrate,
        } => {
            let c = match load(config.as_deref(), listen, database_url) {
                Ok(c) => c,
                Err(e) => return config_failure(&e),
            };
            serve(
                c,
                RunOptions {
                    migrate: !no_migrate,
                },
            )
            .await
        }
        Command::Demo {
            listen,
            database_url,
        } => match crate::demo::run(listen, database_url).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(c: Config, options: RunOptions) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(&c.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", c.server.listen);
            return ExitCode::FAILURE;
        }
    };
    let token = CancellationToken::new();
    server::cancel_on_signals(token.clone());
    match server::run(c, listener, token, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One plain-HTTP GET; returns the status code.
async fn probe(url: &str) -> anyhow::Result<u16> {
    use anyhow::Context as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url::Url::parse(url).context("not a URL")?;
    anyhow::ensure!(u.scheme() == "http", "only http:// URLs can be probed");
    let host = u.host_str().context("URL has no host")?;
    let port = u.port_or_known_default().unwrap_or(80);
    let connect = tokio::net::TcpStream::connect((host, port));
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(3), connect)
        .await
        .context("connect timed out")??;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        &u[url::Position::BeforePath..]
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 32];
    let n = tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut head))
        .await
        .context("no answer in time")??;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("not an HTTP answer")
}
