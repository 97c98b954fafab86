//! How results are printed: text (coloured levels on a terminal) or JSON.

use std::io::Write;

use serde_json::Value;

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// `choice` is auto, always or never; auto colours a terminal unless NO_COLOR is set.
    pub fn new(choice: &str) -> Self {
        use std::io::IsTerminal;
        let color = match choice {
            "always" => true,
            "never" => false,
            _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Self { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn level(&self, level: &str) -> String {
        let code = match level {
            "FATAL" => "1;35",
            "ERROR" => "1;31",
            "WARN" => "33",
            "INFO" => "32",
            _ => "2",
        };
        self.paint(code, &format!("{level:<5}"))
    }
}

/// One stored event: `time level service [host] message {attributes}`.
pub fn event(out: &mut impl Write, style: Style, json: bool, event: &Value) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{event}");
    }
    let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
    let host = event["host"]
        .as_str()
        .map(|h| format!(" {}", style.paint("2", h)))
        .unwrap_or_default();
    let attributes = match &event["attributes"] {
        Value::Null => String::new(),
        a => format!(" {}", style.paint("2", &a.to_string())),
    };
    writeln!(
        out,
        "{} {} {}{host} {}{attributes}",
        style.paint("2", &text("event_time")),
        style.level(&text("level")),
        style.paint("36", &text("service")),
        text("message"),
    )
}

/// A generator status (the gateway's cluster status object).
pub fn status(
    out: &mut impl Write,
    style: Style,
    json: bool,
    status: &Value,
) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{status}");
    }
    let running = status["running"].as_bool().unwrap_or(false);
    writeln!(
        out,
        "{}  target {}/s  current {:.0}/s  generated {}  sent {}  failed {}  breaker {}",
        if running {
            style.paint("1;32", "running")
        } else {
            style.paint("2", "stopped")
        },
        status["target_rate"],
        status["current_rate"].as_f64().unwrap_or(0.0),
        status["generated_total"],
        status["sent_total"],
        status["failed_total"],
        status["circuit_breaker_state"].as_str().unwrap_or("?"),
    )?;
    for instance in status["instances"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {}  {:.0}/s  sent {}",
            instance["instance_id"].as_str().unwrap_or("?"),
            instance["current_rate"].as_f64().unwrap_or(0.0),
            instance["sent_total"],
        )?;
    }
    for unreachable in status["unreachable"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {} {}: {}",
            style.paint("1;31", "unreachable"),
            unreachable["url"].as_str().unwrap_or("?"),
            unreachable["error"].as_str().unwrap_or("?"),
        )?;
    }
    Ok(())
}
