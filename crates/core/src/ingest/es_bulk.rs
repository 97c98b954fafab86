//! The body of Elasticsearch's bulk API (`POST /_bulk`), as Filebeat, Logstash, Fluent Bit's
//! `es` output, Vector's `elasticsearch` sink and syslog-ng's `elasticsearch-http()` send it:
//! NDJSON where each action line (`{"index": {"_index": "...", "_id": "..."}}`, or `create`,
//! `update`, `delete`) is followed by its document (none for `delete`).
//!
//! `index` and `create` carry a log event; `update` and `delete` change stored documents, which
//! a log pipeline does not do: they become per-item errors, as Elasticsearch answers an item it
//! cannot apply. An action line that cannot be read makes the whole body unreadable (which line
//! is a document is no longer known), as it does for Elasticsearch.

use serde::Deserialize;
use std::collections::BTreeMap;

/// What an action line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Index,
    Create,
    Update,
    Delete,
}

impl Action {
    /// The key of the action line, and of the item in the answer.
    pub fn name(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "index" => Action::Index,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            _ => return None,
        })
    }

    /// Whether a document line follows the action line.
    fn has_document(self) -> bool {
        !matches!(self, Action::Delete)
    }
}

/// One item of a bulk body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub action: Action,
    /// `_index` of the action line, else the index of the path (`/{index}/_bulk`).
    pub index: Option<String>,
    pub id: Option<String>,
    /// The document's line (`index`, `create`, `update`); empty for `delete`.
    pub document: &'a [u8],
}

/// Why a bulk body cannot be read at all (Elasticsearch answers 400 to the whole request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error("malformed action/metadata line [{line}]: {why}")]
    MalformedAction { line: usize, why: String },
    #[error("the action on line [{line}] has no document line after it")]
    MissingDocument { line: usize },
}

/// The metadata of an action line; other keys (`routing`, `pipeline`, ...) are ignored.
#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(rename = "_index")]
    index: Option<String>,
    #[serde(rename = "_id")]
    id: Option<serde_json::Value>,
}

/// The items of `body`, in order; `path_index` is the index named in the path, if any. Blank
/// lines between items are skipped; the line after an action that takes a document is its
/// document, whatever it holds (a blank one is an item that cannot be read).
pub fn items<'a>(body: &'a [u8], path_index: Option<&str>) -> Result<Vec<Item<'a>>, BulkError> {
    let mut lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    // A body ends with a line break: the empty piece after it is no line.
    if lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    let mut items = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let (number, line) = (next + 1, lines[next]);
        next += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (action, metadata) = action_line(number, line)?;
        let document = if action.has_document() {
            let Some(document) = lines.get(next) else {
                return Err(BulkError::MissingDocument { line: number });
            };
            next += 1;
            *document
        } else {
            &[]
        };
        items.push(Item {
            action,
            index: metadata
                .index
                .filter(|i| !i.is_empty())
                .or_else(|| path_index.filter(|i| !i.is_empty()).map(str::to_owned)),
            id: metadata.id.and_then(|id| match id {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
            document,
        });
    }
    Ok(items)
}

/// Reads `{"<action>": {metadata}}`.
fn action_line(number: usize, line: &[u8]) -> Result<(Action, Metadata), BulkError> {
    let malformed = |why: String| BulkError::MalformedAction { line: number, why };
    let object: BTreeMap<String, serde_json::Value> = serde_json::from_slice(line)
        .map_err(|e| malformed(format!("expected a JSON object: {e}")))?;
    let mut entries = object.into_iter();
    let (Some((name, metadata)), None) = (entries.next(), entries.next()) else {
        return Err(malformed(
            "expected exactly one action (index, create, update or delete)".into(),
        ));
    };
    let action = Action::from_name(&name).ok_or_else(|| {
        malformed(format!(
            "unknown action [{name}]; expected index, create, update or delete"
        ))
    })?;
    let metadata = match metadata {
        serde_json::Value::Null => Metadata::default(),
        other => serde_json::from_value(other)
            .map_err(|e| malformed(format!("the metadata of [{name}] cannot be read: {e}")))?,
    };
    Ok((action, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn actions_and_their_documents_in_order() {
        let body = b"{\"index\":{\"_index\":\"web\",\"_id\":\"a1\"}}\n{\"message\":\"one\"}\n\
            {\"create\":{}}\r\n{\"message\":\"two\"}\n\n{\"delete\":{\"_id\":7}}\n\
            {\"update\":{\"_index\":\"x\"}}\n{\"doc\":{}}\n";
        let items = items(body, Some("fromthepath")).expect("items");
        type Summary<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);
        let summary: Vec<Summary> = items
            .iter()
            .map(|i| {
                (
                    i.action.name(),
                    i.index.as_deref(),
                    i.id.as_deref(),
                    i.document,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "index",
                    Some("web"),
                    Some("a1"),
                    &b"{\"message\":\"one\"}"[..]
                ),
                (
                    "create",
                    Some("fromthepath"),
                    None,
                    &b"{\"message\":\"two\"}"[..]
                ),
                ("delete", Some("fromthepath"), Some("7"), &b""[..]),
                ("update", Some("x"), None, &b"{\"doc\":{}}"[..]),
            ]
        );
    }

    #[test]
    fn an_unreadable_action_line_or_a_missing_document_refuses_the_body() {
        assert!(matches!(
            items(b"{\"message\":\"no action\"}\n{}\n", None),
            Err(BulkError::MalformedAction { line: 1, .. })
        ));
        assert!(matches!(
            items(b"{\"index\":{}}\n{}\nnot json\n", None),
            Err(BulkError::MalformedAction { line: 3, .. })
        ));
        assert!(matches!(
            items(b"{\"index\":{},\"create\":{}}\n{}\n", None),
            Err(BulkError::MalformedAction { line: 1, .. })
        ));
        assert!(matches!(
            items(b"{\"index\":{\"_index\":5}}\n{}\n", None),
            Err(BulkError::MalformedAction { line: 1, .. })
        ));
        assert_eq!(
            items(b"{\"index\":{}}\n{}\n{\"index\":{}}\n", None),
            Err(BulkError::MissingDocument { line: 3 })
        );
        assert_eq!(items(b"\n\n", None), Ok(vec![]));
        // A blank document is that item's (it cannot be read), not a reason to pair the next
        // action line with the wrong document.
        let blank = items(
            b"{\"index\":{\"_index\":\"\"}}\n\n{\"index\":{}}\n{}\n",
            Some("p"),
        )
        .expect("items");
        assert_eq!(blank.len(), 2);
        assert_eq!(
            (blank[0].document, blank[0].index.as_deref()),
            (&b""[..], Some("p"))
        );
    }

    proptest! {
        #[test]
        fn any_bytes_give_items_or_an_error_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = items(&body, Some("i"));
        }

        #[test]
        fn well_formed_bodies_give_one_item_per_pair(docs in proptest::collection::vec("[a-z ]{0,20}", 0..20)) {
            let body: String = docs
                .iter()
                .map(|d| format!("{{\"index\":{{}}}}\n{{\"message\":{d:?}}}\n"))
                .collect();
            let items = items(body.as_bytes(), None).expect("items");
            prop_assert_eq!(items.len(), docs.len());
        }
    }
}
