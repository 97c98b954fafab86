//! The command line: global options (where the gateway is, the token, the output form) and one
//! command.

use clap::{Parser, Subcommand};

/// logstream: search stored logs and control log generation through the gateway's API.
#[derive(Debug, Parser)]
#[command(name = "logstream", version, about)]
pub struct Cli {
    /// The gateway's base URL.
    #[arg(
        long,
        global = true,
        env = "LOGSTREAM_GATEWAY_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    pub gateway: String,

    /// Bearer token: the control token for start/stop, the read token (or the control token)
    /// for the rest when the gateway requires one.
    #[arg(
        long,
        global = true,
        env = "LOGSTREAM_API_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Print JSON (one object per line for events) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Colour: auto (when printing to a terminal and NO_COLOR is unset), always or never.
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Search stored events, newest first (GET /api/v1/logs).
    Search(SearchArgs),
    /// Follow events live as they arrive (GET /api/v1/tail) until interrupted.
    Tail(TailArgs),
    /// Start (or retune) generation on every generator instance.
    Start(StartArgs),
    /// Stop generation everywhere; prints the final totals.
    Stop,
    /// Generation status of every instance.
    Status,
}

/// The filters a search and a tail share.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Words of the message: all of them, "a phrase", `or` between alternatives, -word to
    /// exclude (PostgreSQL web search syntax).
    pub words: Vec<String>,
    /// Only these services (a name, or a comma-separated list).
    #[arg(long, short)]
    pub service: Option<String>,
    /// Only these levels: ERROR, WARN,ERROR or a bound such as '>=WARN'.
    #[arg(long, short)]
    pub level: Option<String>,
    /// Only events from this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only events of this trace.
    #[arg(long)]
    pub trace_id: Option<String>,
    /// An attribute equality, KEY.PATH=VALUE (e.g. http.status=500); repeatable.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Events at or after this RFC 3339 time (default: an hour before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// Events before this RFC 3339 time (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Most events to print (pages are followed until then).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub limit: u64,
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Events per second (all instances together).
    #[arg(long)]
    pub rate: Option<u64>,
    /// steady, spike, error_burst or attack.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
}
