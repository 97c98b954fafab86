//! logstream: the command-line client of the gateway. `search` follows the pages of
//! `GET /api/v1/logs`, `tail` the Server-Sent Events of `GET /api/v1/tail`; `start`, `stop` and
//! `status` are the generator control endpoints. `args` is the command line, `client` the HTTP
//! calls, `print` the output.

mod args;
mod client;
mod print;

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};

use args::{Cli, Command, FilterArgs, SearchArgs, StartArgs};
use client::Client;
use print::Style;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logstream: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.gateway, cli.token.clone())?;
    let style = Style::new(&cli.color);
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Search(args) => search(&client, style, cli.json, &args, &mut out).await?,
        Command::Tail(args) => {
            let query = filter_query(&args.filters)?;
            client
                .follow("/api/v1/tail", &query, |name, data| {
                    print_streamed(&mut out, style, cli.json, name, data)
                })
                .await?
        }
        Command::Start(args) => {
            let status = client
                .post("/api/v1/generator/start", &start_body(&args))
                .await?;
            print::status(&mut out, style, cli.json, &status)?;
        }
        Command::Stop => {
            let status = client.post("/api/v1/generator/stop", &json!({})).await?;
            print::status(&mut out, style, cli.json, &status)?;
        }
        Command::Status => {
            let status = client.get("/api/v1/generator/status", &[]).await?;
            print::status(&mut out, style, cli.json, &status)?;
        }
    }
    out.flush().context("cannot write the output")
}

fn start_body(args: &StartArgs) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(rate) = args.rate {
        body.insert("rate_per_second".into(), rate.into());
    }
    if let Some(scenario) = &args.scenario {
        body.insert("scenario".into(), scenario.as_str().into());
    }
    if let Some(duration) = args.duration {
        body.insert("duration_seconds".into(), duration.into());
    }
    Value::Object(body)
}

/// One streamed event of a tail: an event, or the count of those skipped.
fn print_streamed(
    out: &mut impl Write,
    style: Style,
    json: bool,
    name: &str,
    data: &str,
) -> anyhow::Result<()> {
    let value: Value =
        serde_json::from_str(data).context("the tail sent an event that is not JSON")?;
    if name == "skipped" {
        if json {
            writeln!(out, "{value}")?;
        } else {
            eprintln!(
                "... {} events skipped (reading slower than they came)",
                value["skipped"]
            );
        }
    } else {
        print::event(out, style, json, &value)?;
    }
    out.flush()?;
    Ok(())
}

/// The query parameters of a search.
fn search_query(args: &SearchArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut query = filter_query(&args.filters)?;
    for (name, value) in [("from", &args.from), ("to", &args.to)] {
        if let Some(value) = value {
            query.push((name.to_owned(), value.clone()));
        }
    }
    Ok(query)
}

/// The query parameters of the filters a search and a tail share.
fn filter_query(args: &FilterArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut query = Vec::new();
    let mut add = |name: &str, value: Option<&String>| {
        if let Some(value) = value {
            query.push((name.to_owned(), value.clone()));
        }
    };
    add("service", args.service.as_ref());
    add("level", args.level.as_ref());
    add("host", args.host.as_ref());
    add("trace_id", args.trace_id.as_ref());
    if !args.words.is_empty() {
        query.push(("q".into(), args.words.join(" ")));
    }
    for attribute in &args.attributes {
        let (key, value) = attribute
            .split_once('=')
            .with_context(|| format!("--attr {attribute:?} is not KEY=VALUE"))?;
        query.push((format!("attr.{key}"), value.to_owned()));
    }
    Ok(query)
}

/// Prints up to `args.limit` events, following the pages.
async fn search(
    client: &Client,
    style: Style,
    json: bool,
    args: &SearchArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let base = search_query(args)?;
    let mut left = args.limit;
    let mut cursor: Option<String> = None;
    while left > 0 {
        let mut query = base.clone();
        query.push(("limit".into(), left.min(1000).to_string()));
        if let Some(cursor) = &cursor {
            query.push(("cursor".into(), cursor.clone()));
        }
        let page = client.get("/api/v1/logs", &query).await?;
        for event in page["events"].as_array().into_iter().flatten() {
            print::event(out, style, json, event)?;
            left = left.saturating_sub(1);
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_becomes_the_api_query() {
        let cli = Cli::parse_from([
            "logstream",
            "search",
            "--service",
            "payments",
            "--level",
            ">=WARN",
            "--attr",
            "http.status=500",
            "upstream",
            "timeout",
        ]);
        let Command::Search(args) = cli.command else {
            panic!("search");
        };
        let query = search_query(&args).expect("valid");
        let has = |k: &str, v: &str| query.contains(&(k.to_owned(), v.to_owned()));
        assert!(has("service", "payments"));
        assert!(has("level", ">=WARN"));
        assert!(has("attr.http.status", "500"));
        assert!(has("q", "upstream timeout"));
        let bad = Cli::parse_from(["logstream", "search", "--attr", "nope"]);
        let Command::Search(args) = bad.command else {
            panic!("search");
        };
        assert!(search_query(&args).is_err());
    }

    #[test]
    fn start_sends_only_what_was_given() {
        let cli = Cli::parse_from([
            "logstream",
            "start",
            "--rate",
            "5000",
            "--scenario",
            "attack",
        ]);
        let Command::Start(args) = cli.command else {
            panic!("start");
        };
        assert_eq!(
            start_body(&args),
            json!({"rate_per_second": 5000, "scenario": "attack"})
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
