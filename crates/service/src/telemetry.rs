//! Tracing set-up, done once at start.

use tracing_subscriber::EnvFilter;

use crate::settings::{CommonSettings, LogFormat};

/// Installs the global subscriber. Fails when the filter does not parse.
pub fn init(settings: &CommonSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.log_filter).map_err(|e| {
        anyhow::anyhow!(
            "invalid LOGSTREAM_LOG / --log-filter {:?}: {e}",
            settings.log_filter
        )
    })?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi);
    match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
