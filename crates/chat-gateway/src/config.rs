//! Configuration: defaults, then the TOML file, then environment, then flags.
//!
//! The file format is the contract in CONFIG.md. Unknown keys, duplicate
//! account names, bad URLs and bad time zones are refused with the file, the
//! key and the problem named, so `check-config` can gate a deploy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chat_core::time::{parse_zone, Tz};
use serde::Deserialize;

/// The default embedded database: a file beside the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://chat-gateway.db?mode=rwc";
/// The default listen address: loopback, so an unconfigured gateway is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A configuration problem, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{key}: {problem}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
pub struct ConfigError {
    /// The file, when the problem is in one.
    pub file: Option<PathBuf>,
    /// Dotted key path (`accounts[1].timezone`).
    pub key: String,
    /// What is wrong, in a sentence.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Secrets in account settings: inline or `{ env = "VAR" }` (kept here
/// under its old path for callers of the configuration).
pub use chat_core::settings::SecretSource;

/// `[server]`: how the API is served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the API; loopback unless API keys are configured.
    pub listen: String,
    /// Separate address for `/metrics`, so scrapers need no API access.
    pub metrics_listen: Option<String>,
    /// Budget of an ordinary request; long polls and SSE are exempt.
    pub request_timeout_secs: u64,
    /// How long events stay readable; older cursors get 410.
    pub events_retention_days: u64,
    /// Browser origins (`https://crm.example.com`) allowed to call the API
    /// from a web page; exact origins, because a pattern would let a
    /// look-alike domain read customer conversations. Empty: no CORS.
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            metrics_listen: None,
            request_timeout_secs: 30,
            events_retention_days: 7,
            cors_origins: Vec::new(),
        }
    }
}

/// `[webhooks]`: delivery policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Delay before each retry, in seconds; its length is the retry budget.
    pub retry_schedule_secs: Vec<u64>,
    /// Allow link-local and cloud-metadata targets (off: they are an SSRF risk).
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_schedule_secs: vec![5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
            allow_private_targets: false,
        }
    }
}

/// `[database]`: where everything is stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…` (embedded, default) or `postgres://…`.
    pub url: String,
    /// Pool size; the machine's cores, not the request rate, should set it.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DEFAULT_DATABASE_URL.to_string(),
            max_connections: 16,
        }
    }
}

/// A token bucket for one API key.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
}

/// `[[api_keys]]`: one caller. Only the key's SHA-256 is stored, so the file
/// grants nothing if it leaks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who this key belongs to (logs, idempotency scope).
    pub name: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// `read`, `write`, `admin`.
    pub scopes: Vec<String>,
    /// Accounts this key may see; `["*"]` for all.
    #[serde(default = "all_accounts")]
    pub accounts: Vec<String>,
    /// Optional per-key request budget.
    pub rate_limit: Option<RateLimit>,
}

fn all_accounts() -> Vec<String> {
    vec!["*".to_string()]
}

/// The keys every `[[accounts]]` table has, whatever its provider; the
/// rest of the table belongs to the provider (its crate's settings type).
const COMMON_ACCOUNT_KEYS: [&str; 7] = [
    "name",
    "provider",
    "base_url",
    "timezone",
    "request_timeout_secs",
    "poll_interval_secs",
    "initial_sync_days",
];

/// The common keys of one `[[accounts]]` table.
#[derive(Debug, Clone, Deserialize)]
struct CommonAccount {
    /// Unique name; appears as `account` in the API.
    name: String,
    /// A provider of the registry.
    provider: String,
    /// Provider API root.
    base_url: String,
    /// Zone of provider-local times.
    timezone: Option<String>,
    /// One provider call's budget.
    request_timeout_secs: Option<u64>,
    /// Polling providers: seconds between polls.
    poll_interval_secs: Option<u64>,
    /// Polling providers: first-start history depth.
    initial_sync_days: Option<u64>,
}

/// An account's provider-specific keys as written, checked by the
/// provider's settings type; `Debug` shows the key names only, since
/// values may be credentials.
#[derive(Clone, Default)]
pub struct ProviderKeys(toml::Table);

impl ProviderKeys {
    /// The keys and their values, for the provider's settings type.
    pub fn keys(&self) -> &toml::Table {
        &self.0
    }
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A validated account.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// Unique name.
    pub name: String,
    /// Provider name.
    pub provider: String,
    /// Provider API root.
    pub base_url: url::Url,
    /// Zone of provider-local times.
    pub timezone: Tz,
    /// One provider call's budget.
    pub request_timeout_secs: u64,
    /// Polling interval (polling providers).
    pub poll_interval_secs: u64,
    /// First-start history depth (polling providers).
    pub initial_sync_days: u64,
    /// Provider-specific keys, already checked by the provider's crate.
    pub settings: ProviderKeys,
}

/// A validated API key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Who it belongs to.
    pub name: String,
    /// Raw SHA-256 of the key.
    pub sha256: [u8; 32],
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Visible accounts; `None` = all.
    pub accounts: Option<Vec<String>>,
    /// Request budget.
    pub rate_limit: Option<RateLimit>,
}

/// The whole validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where it was read from, if a file.
    pub file: Option<PathBuf>,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[webhooks]`.
    pub webhooks: WebhooksConfig,
    /// `[outbox]`: delivery of sends.
    pub outbox: crate::outbox::OutboxConfig,
    /// `[idempotency]`: how long `Idempotency-Key` answers are kept.
    pub idempotency: crate::idempotency::IdempotencyConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[[api_keys]]`.
    pub api_keys: Vec<ApiKey>,
    /// `[[accounts]]`.
    pub accounts: Vec<AccountConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    webhooks: WebhooksConfig,
    #[serde(default)]
    outbox: crate::outbox::OutboxConfig,
    #[serde(default)]
    idempotency: crate::idempotency::IdempotencyConfig,
    #[serde(default)]
    database: DatabaseConfig,
    #[serde(default)]
    api_keys: Vec<ApiKeyConfig>,
    #[serde(default)]
    accounts: Vec<toml::Table>,
}

impl Config {
    /// Finds the file (`path`, else `$CHATGW_CONFIG`, else `./chat-gateway.toml`
    /// if present), reads and validates it, then applies `CHATGW_LISTEN` and
    /// `DATABASE_URL` / `CHATGW_DATABASE_URL`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("CHATGW_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let p = PathBuf::from("chat-gateway.toml");
                p.exists().then_some(p)
            });
        let mut config = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    file: Some(p.clone()),
                    key: "(file)".into(),
                    problem: format!("cannot read: {e}"),
                })?;
                Config::parse(&text).map_err(|e| ConfigError {
                    file: Some(p.clone()),
                    ..e
                })?
            }
            None => Config::default(),
        };
        config.file = path;
        if let Ok(listen) = std::env::var("CHATGW_LISTEN") {
            config.server.listen = listen;
        }
        if let Some(url) = std::env::var("CHATGW_DATABASE_URL")
            .ok()
            .or_else(|| std::env::var("DATABASE_URL").ok())
        {
            config.database.url = url;
        }
        config.check_addresses()?;
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "(document)".to_string());
            ConfigError::new(key, e.message().to_string())
        })?;
        let mut api_keys = Vec::new();
        for (i, k) in file.api_keys.iter().enumerate() {
            api_keys.push(validate_key(i, k)?);
        }
        let mut accounts: Vec<AccountConfig> = Vec::new();
        for (i, a) in file.accounts.iter().enumerate() {
            let acc = validate_account(i, a)?;
            if accounts.iter().any(|x| x.name == acc.name) {
                return Err(ConfigError::new(
                    format!("accounts[{i}].name"),
                    format!("duplicate account name `{}`", acc.name),
                ));
            }
            accounts.push(acc);
        }
        for (i, k) in api_keys.iter().enumerate() {
            for name in k.accounts.iter().flatten() {
                if !accounts.iter().any(|a| &a.name == name) {
                    return Err(ConfigError::new(
                        format!("api_keys[{i}].accounts"),
                        format!("no account named `{name}`"),
                    ));
                }
            }
        }
        let config = Config {
            file: None,
            server: file.server,
            webhooks: file.webhooks,
            outbox: file.outbox.validated()?,
            idempotency: file.idempotency.validated()?,
            database: file.database,
            api_keys,
            accounts,
        };
        config.check_addresses()?;
        Ok(config)
    }

    /// Checks the listen addresses and database URL after overrides.
    pub fn check_addresses(&self) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String| ConfigError {
            file: self.file.clone(),
            key: key.to_string(),
            problem,
        };
        self.server.listen.parse::<SocketAddr>().map_err(|_| {
            err(
                "server.listen",
                format!("`{}` is not an IP:port address", self.server.listen),
            )
        })?;
        if let Some(m) = &self.server.metrics_listen {
            m.parse::<SocketAddr>().map_err(|_| {
                err(
                    "server.metrics_listen",
                    format!("`{m}` is not an IP:port address"),
                )
            })?;
        }
        if crate::store::Backend::from_url(&self.database.url).is_none() {
            return Err(err(
                "database.url",
                "must start with sqlite: or postgres://".to_string(),
            ));
        }
        if self.server.events_retention_days == 0 {
            return Err(err(
                "server.events_retention_days",
                "must be at least 1".into(),
            ));
        }
        for (i, origin) in self.server.cors_origins.iter().enumerate() {
            check_origin(origin)
                .map_err(|problem| err(&format!("server.cors_origins[{i}]"), problem))?;
        }
        Ok(())
    }

    /// Looks up an account by name.
    pub fn account(&self, name: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.name == name)
    }
}

/// An exact browser origin: `http(s)://host[:port]`, nothing more (browsers
/// send exactly that in `Origin`, so anything else could never match).
fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|e| {
        format!("`{origin}` is not an origin such as https://crm.example.com ({e})")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{origin}` must start with http:// or https://"));
    }
    let exact = url.origin().ascii_serialization();
    if exact != origin {
        return Err(format!(
            "`{origin}` is not an exact origin (scheme, host and port only, no path or \
             trailing slash); did you mean `{exact}`?"
        ));
    }
    Ok(())
}

fn validate_key(i: usize, k: &ApiKeyConfig) -> Result<ApiKey, ConfigError> {
    let key = |f: &str| format!("api_keys[{i}].{f}");
    let bytes = hex::decode(k.sha256.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ConfigError::new(key("sha256"), "must be 64 hex digits (sha256 of the key)")
        })?;
    for s in &k.scopes {
        if !matches!(s.as_str(), "read" | "write" | "admin") {
            return Err(ConfigError::new(
                key("scopes"),
                format!("unknown scope `{s}` (read, write, admin)"),
            ));
        }
    }
    let accounts = if k.accounts.iter().any(|a| a == "*") {
        None
    } else {
        Some(k.accounts.clone())
    };
    if let Some(r) = k.rate_limit {
        if r.per_second.is_nan() || r.per_second <= 0.0 || r.burst == 0 {
            return Err(ConfigError::new(
                key("rate_limit"),
                "per_second must be > 0 and burst >= 1",
            ));
        }
    }
    Ok(ApiKey {
        name: k.name.clone(),
        sha256: bytes,
        scopes: k.scopes.clone(),
        accounts,
        rate_limit: k.rate_limit,
    })
}

fn validate_account(i: usize, table: &toml::Table) -> Result<AccountConfig, ConfigError> {
    let key = |f: &str| format!("accounts[{i}].{f}");
    let common_table: toml::Table = table
        .iter()
        .filter(|(k, _)| COMMON_ACCOUNT_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let a: CommonAccount = toml::Value::Table(common_table).try_into().map_err(|e| {
        let field = COMMON_ACCOUNT_KEYS
            .iter()
            .find(|k| e.message().contains(&format!("`{k}`")))
            .copied()
            .unwrap_or("(account)");
        ConfigError::new(key(field), e.message().to_string())
    })?;
    if a.name.trim().is_empty() {
        return Err(ConfigError::new(key("name"), "must not be empty"));
    }
    let entry = crate::providers::provider_entry(&a.provider).ok_or_else(|| {
        ConfigError::new(
            key("provider"),
            format!(
                "unknown provider `{}` (one of {})",
                a.provider,
                crate::providers::provider_names().join(", ")
            ),
        )
    })?;
    let base_url = url::Url::parse(&a.base_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            ConfigError::new(
                key("base_url"),
                format!("`{}` is not an http(s) URL", a.base_url),
            )
        })?;
    let timezone = match &a.timezone {
        Some(tz) => parse_zone(tz).map_err(|e| ConfigError::new(key("timezone"), e.to_string()))?,
        None => chrono_tz::Asia::Shanghai,
    };
    // Keys beyond the common ones belong to the provider; one that another
    // provider takes is a mistake worth naming as such.
    let mut own = toml::Table::new();
    for (k, v) in table {
        if COMMON_ACCOUNT_KEYS.contains(&k.as_str()) {
            continue;
        }
        if entry.keys.contains(&k.as_str()) {
            own.insert(k.clone(), v.clone());
            continue;
        }
        let problem = match crate::providers::REGISTRY
            .iter()
            .find(|e| e.keys.contains(&k.as_str()))
        {
            Some(other) => format!("applies to provider {}, not {}", other.name, a.provider),
            None => format!("unknown field `{k}` for provider {}", a.provider),
        };
        return Err(ConfigError::new(key(k), problem));
    }
    (entry.check)(&own).map_err(|e| ConfigError::new(key(&e.key), e.problem))?;
    for (field, v) in [
        ("request_timeout_secs", a.request_timeout_secs),
        ("poll_interval_secs", a.poll_interval_secs),
    ] {
        if v == Some(0) {
            return Err(ConfigError::new(key(field), "must be at least 1"));
        }
    }
    Ok(AccountConfig {
        name: a.name.clone(),
        provider: entry.name.to_string(),
        base_url,
        timezone,
        request_timeout_secs: a.request_timeout_secs.unwrap_or(10),
        poll_interval_secs: a
            .poll_interval_secs
            .unwrap_or(entry.default_poll_interval_secs),
        initial_sync_days: a.initial_sync_days.unwrap_or(7),
        settings: ProviderKeys(own),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[server]
listen = "127.0.0.1:8080"
metrics_listen = "127.0.0.1:9090"
request_timeout_secs = 30
events_retention_days = 7

[webhooks]
retry_schedule_secs = [5, 300]
allow_private_targets = false

[database]
url = "postgres://postgres@127.0.0.1:5432/chatgw"
max_connections = 16

[[api_keys]]
name = "crm-backend"
sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
scopes = ["read", "write"]
accounts = ["*"]
rate_limit = { per_second = 50, burst = 100 }

[[accounts]]
name = "spark-main"
provider = "spark"
base_url = "http://127.0.0.1:9101"
timezone = "Asia/Shanghai"
poll_timeout_secs = 30
request_timeout_secs = 10
headers = { Authorization = "Token abc" }

[[accounts]]
name = "huawei-web"
provider = "ccmessaging"
base_url = "http://127.0.0.1:9102"
app_key = "k"
app_secret = { env = "CHATGW_TEST_SECRET_THAT_EXISTS" }
channel_id = "202207292843442389"
channel = "WEB"
locale = "zh"
customers = ["1659490221026188522"]
poll_interval_secs = 10
initial_sync_days = 7

[[accounts]]
name = "kf5"
provider = "kchat"
base_url = "http://127.0.0.1:9103"
email = "agent@example.com"
initial_sync_days = 7
api_token = "t"
timezone = "Asia/Shanghai"
poll_interval_secs = 30
"#;

    #[test]
    fn the_documented_example_parses() {
        std::env::set_var("CHATGW_TEST_SECRET_THAT_EXISTS", "s3cret");
        let c = Config::parse(FULL).unwrap();
        assert_eq!(c.accounts.len(), 3);
        assert_eq!(c.api_keys[0].scopes, ["read", "write"]);
        assert_eq!(c.api_keys[0].accounts, None);
        assert_eq!(c.accounts[1].provider, "ccmessaging");
        assert_eq!(c.accounts[2].poll_interval_secs, 30);
        let accounts = crate::providers::Accounts::build(&c).unwrap();
        let ccm = accounts.get("huawei-web").unwrap();
        assert_eq!(ccm.provider.sync_customers(), ["1659490221026188522"]);
        // Secrets never print.
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{c:?}").contains("Token abc"));
    }

    #[test]
    fn the_shipped_example_and_compose_configs_parse() {
        for var in ["SPARK_TOKEN", "CC_APP_KEY", "CC_APP_SECRET", "KF5_TOKEN"] {
            std::env::set_var(var, "x");
        }
        let example = Config::parse(include_str!("../../../chat-gateway.example.toml")).unwrap();
        assert_eq!(example.accounts.len(), 3);
        assert_eq!(example.api_keys.len(), 2);
        let compose = Config::parse(include_str!("../../../deploy/compose-gateway.toml")).unwrap();
        assert_eq!(compose.accounts.len(), 3);
    }

    fn problem(text: &str) -> ConfigError {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn mistakes_name_the_key_and_the_problem() {
        let e = problem("[server]\nlisten = \"127.0.0.1:1\"\nlsten = 3\n");
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(e.problem.contains("unknown field"), "{e}");

        let acc = |extra: &str| {
            format!("[[accounts]]\nname = \"a\"\nprovider = \"kchat\"\nbase_url = \"http://x\"\nemail = \"e\"\napi_token = \"t\"\n{extra}")
        };
        assert_eq!(
            problem(&acc("timezone = \"Mars/Base\"")).key,
            "accounts[0].timezone"
        );
        assert_eq!(problem(&acc("app_key = \"k\"")).key, "accounts[0].app_key");
        let dup = format!("{}\n{}", acc(""), acc(""));
        let e = problem(&dup);
        assert_eq!(e.key, "accounts[1].name");
        assert!(e.problem.contains("duplicate"));
        let e = problem("[[accounts]]\nname = \"a\"\nprovider = \"kchat\"\nbase_url = \"not a url\"\nemail = \"e\"\napi_token = \"t\"\n");
        assert_eq!(e.key, "accounts[0].base_url");
        let e =
            problem("[[accounts]]\nname = \"a\"\nprovider = \"icq\"\nbase_url = \"http://x\"\n");
        assert_eq!(e.key, "accounts[0].provider");
        let e = problem("[[api_keys]]\nname = \"k\"\nsha256 = \"abc\"\nscopes = [\"read\"]\n");
        assert_eq!(e.key, "api_keys[0].sha256");
        let e = problem("[[accounts]]\nname = \"a\"\nprovider = \"ccmessaging\"\nbase_url = \"http://x\"\napp_key = { env = \"CHATGW_SURELY_UNSET_VAR\" }\napp_secret = \"s\"\nchannel_id = \"c\"\n");
        assert_eq!(e.key, "accounts[0].app_key");
        assert!(e.problem.contains("CHATGW_SURELY_UNSET_VAR"));
        let e = problem("[database]\nurl = \"mysql://x\"\n");
        assert_eq!(e.key, "database.url");
    }

    #[test]
    fn cors_origins_must_be_exact_origins() {
        let ok = Config::parse(
            "[server]\ncors_origins = [\"https://crm.example.com\", \"http://127.0.0.1:3000\"]\n",
        )
        .unwrap();
        assert_eq!(ok.server.cors_origins.len(), 2);
        assert!(Config::parse("[server]\ncors_origins = []\n").is_ok());
        for (bad, hint) in [
            ("https://crm.example.com/", "https://crm.example.com"),
            ("https://crm.example.com/app", "https://crm.example.com"),
            ("*", "not an origin"),
            ("crm.example.com", "not an origin"),
            ("ftp://crm.example.com", "http:// or https://"),
            ("https://CRM.example.com", "https://crm.example.com"),
        ] {
            let e = Config::parse(&format!("[server]\ncors_origins = [\"ok\", \"{bad}\"]\n"))
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.key, "server.cors_origins[0]", "{bad}: {e}");
            let e = Config::parse(&format!(
                "[server]\ncors_origins = [\"https://ok.example\", \"{bad}\"]\n"
            ))
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.key, "server.cors_origins[1]", "{bad}: {e}");
            assert!(e.problem.contains(hint), "{bad}: {}", e.problem);
        }
    }

    #[test]
    fn provider_keys_are_checked_by_the_providers_own_settings() {
        let kchat = |extra: &str| {
            format!("[[accounts]]\nname = \"a\"\nprovider = \"kchat\"\nbase_url = \"http://x\"\nemail = \"e\"\napi_token = \"t\"\n{extra}")
        };
        let e = problem(&kchat("colour = \"blue\""));
        assert_eq!(e.key, "accounts[0].colour");
        assert!(e.problem.contains("unknown field"), "{e}");
        let e = problem(&kchat("headers = { A = \"b\" }"));
        assert_eq!(e.key, "accounts[0].headers");
        assert!(e.problem.contains("applies to provider spark"), "{e}");
        let e = problem(&kchat("poll_interval_secs = 0"));
        assert_eq!(e.key, "accounts[0].poll_interval_secs");

        let e = problem("[[accounts]]\nname = \"a\"\nprovider = \"kchat\"\nbase_url = \"http://x\"\nemail = \"e\"\n");
        assert_eq!(e.key, "accounts[0].api_token");
        assert!(e.problem.contains("api_token or password"), "{e}");
        let e = problem("[[accounts]]\nname = \"a\"\nprovider = \"ccmessaging\"\nbase_url = \"http://x\"\napp_key = \"k\"\napp_secret = \"s\"\n");
        assert_eq!(e.key, "accounts[0].channel_id");
        assert!(e.problem.contains("required"), "{e}");
        let e = problem("[[accounts]]\nname = \"a\"\nprovider = \"ccmessaging\"\nbase_url = \"http://x\"\napp_key = \"k\"\napp_secret = \"s\"\nchannel_id = 5\n");
        assert_eq!(e.key, "accounts[0].channel_id", "{e}");
        assert!(e.problem.contains("invalid type"), "{e}");
        let spark = |extra: &str| {
            format!("[[accounts]]\nname = \"a\"\nprovider = \"spark\"\nbase_url = \"http://x\"\n{extra}")
        };
        let e = problem(&spark("poll_timeout_secs = 0"));
        assert_eq!(e.key, "accounts[0].poll_timeout_secs");
        let e = problem(&spark("headers = { \"bad header\" = \"v\" }"));
        assert_eq!(e.key, "accounts[0].headers.bad header");
        let e = problem(&spark("name2 = 1"));
        assert_eq!(e.key, "accounts[0].name2");
        let e = problem("[[accounts]]\nprovider = \"spark\"\nbase_url = \"http://x\"\n");
        assert_eq!(e.key, "accounts[0].name", "{e}");
    }
}
