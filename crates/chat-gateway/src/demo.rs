//! `chat-gateway demo`: the gateway against simulators of all three providers.

/// Starts the simulators and the gateway; arrives with the sync engine.
pub async fn run(_listen: Option<String>, _database_url: Option<String>) -> anyhow::Result<()> {
    anyhow::bail!("demo needs the provider simulators, which are not part of this build yet")
}
