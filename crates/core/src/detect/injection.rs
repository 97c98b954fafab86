//! Attack requests told from look-alikes by reading them as the attacked interpreter would, not
//! by keywords. The path and query are URL-decoded (twice, for double encoding), then:
//!
//! - **SQL injection**: the text is tokenized as SQL three times (as it stands, and as if it
//!   continued a single- or double-quoted string, which is where injected text lands), each
//!   token reduced to a class (string, number, keyword, logic operator, comparison, comment, …),
//!   and the sequence of classes matched against the shapes of injection: a string closed and
//!   followed by a boolean test or a comment, `UNION [ALL] SELECT` followed by a column list, a
//!   statement stacked after `;`, a time-delay function call. A product called "Select Comfort"
//!   or a search for "union jack" is a word followed by words: no such shape.
//! - **XSS**: HTML tags are parsed: a `script`, `iframe`, `object`, `embed`, `svg` or `math`
//!   tag, any tag with an `on…=` event handler, or a `javascript:` / `vbscript:` /
//!   `data:text/html` URL in a parameter value.
//! - **Path traversal**: the path and each parameter value are split into segments (`/` and
//!   `\`); a segment of two or more dots only (`..`, `....`, which filters that strip `../`
//!   once turn back into `..`) that climbs, or a well-known sensitive file reached through one.

/// Which attacks one request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Findings {
    pub sql_injection: bool,
    pub xss: bool,
    pub path_traversal: bool,
}

impl Findings {
    pub fn any(self) -> bool {
        self.sql_injection || self.xss || self.path_traversal
    }
}

/// Reads a request target (path and query, as logged).
pub fn inspect(target: &str) -> Findings {
    let once = url_decode(target);
    let twice = url_decode(&once);
    let mut findings = Findings::default();
    for text in [once.as_str(), twice.as_str()] {
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        findings.path_traversal |= traverses(path);
        for value in query
            .split('&')
            .map(|p| p.split_once('=').map_or(p, |(_, v)| v))
        {
            findings.sql_injection |= is_sql_injection(value);
            findings.xss |= is_xss(value);
            findings.path_traversal |= traverses(value);
        }
        // Injection in the path itself (REST ids: /items/1' OR '1'='1).
        if let Some(last) = path.rsplit('/').next() {
            findings.sql_injection |= is_sql_injection(last);
        }
        findings.xss |= is_xss(path);
    }
    findings
}

/// Percent-decoding (`+` as a space), lossy on invalid UTF-8; invalid escapes stay as they are.
pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Token classes of the SQL reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A quoted string (closed or not).
    Str,
    Num,
    /// `AND`, `OR`, `XOR`, `&&`, `||`, `NOT`.
    Logic,
    /// `=`, `<`, `>`, `<>`, `!=`, `LIKE`, `IN`, `IS`, …
    Compare,
    /// Arithmetic and other operators.
    Op,
    /// `--`, `#`, `/*`.
    Comment,
    Semicolon,
    Open,
    Close,
    Comma,
    Union,
    Select,
    /// Starts a statement when stacked: `DROP`, `INSERT`, `UPDATE`, `DELETE`, `EXEC`, …
    Statement,
    /// Other SQL keywords (`FROM`, `WHERE`, `NULL`, `ALL`, …).
    Keyword,
    /// A time-delay or probing function followed by `(`.
    DelayCall,
    /// Any other word (identifier, function name).
    Word,
    /// `@@version`, `@var`.
    Variable,
}

const STATEMENTS: &[&str] = &[
    "drop", "insert", "update", "delete", "exec", "execute", "shutdown", "truncate", "alter",
    "create", "declare", "waitfor", "grant", "revoke",
];
const KEYWORDS: &[&str] = &[
    "from", "where", "null", "all", "distinct", "into", "values", "having", "group", "order", "by",
    "limit", "offset", "case", "when", "then", "else", "end", "table", "database", "true", "false",
    "char", "concat", "convert", "cast", "set", "version",
];
const COMPARES: &[&str] = &["like", "in", "is", "between", "rlike", "regexp", "sounds"];
const DELAYS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "dbms_pipe.receive_message",
    "load_file",
    "extractvalue",
    "updatexml",
];

/// The classes of `text` read as SQL, after `prefix` (an opening quote, or nothing).
fn sql_classes(prefix: &str, text: &str) -> Vec<Class> {
    let joined = format!("{prefix}{text}");
    let b = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < 64 {
        let c = b[i];
        let (class, len) = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'\'' | b'"' | b'`' => {
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .map_or(b.len(), |p| i + 1 + p + 1);
                (Class::Str, end - i)
            }
            b'0'..=b'9' => (
                Class::Num,
                run(b, i, |x| x.is_ascii_alphanumeric() || x == b'.'),
            ),
            b'-' if b.get(i + 1) == Some(&b'-') => (Class::Comment, b.len() - i),
            b'#' => (Class::Comment, b.len() - i),
            b'/' if b.get(i + 1) == Some(&b'*') => (Class::Comment, 2),
            b';' => (Class::Semicolon, 1),
            b'(' => (Class::Open, 1),
            b')' => (Class::Close, 1),
            b',' => (Class::Comma, 1),
            b'=' => (Class::Compare, 1),
            b'<' | b'>' | b'!' => (
                Class::Compare,
                run(b, i, |x| matches!(x, b'<' | b'>' | b'=' | b'!')),
            ),
            b'&' if b.get(i + 1) == Some(&b'&') => (Class::Logic, 2),
            b'|' if b.get(i + 1) == Some(&b'|') => (Class::Logic, 2),
            b'@' => (
                Class::Variable,
                run(b, i, |x| {
                    x == b'@' || x.is_ascii_alphanumeric() || x == b'_'
                }),
            ),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = run(b, i, |x| {
                    x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'$'
                });
                let word = joined[i..i + len].to_ascii_lowercase();
                let called = b[i + len..].iter().find(|x| !x.is_ascii_whitespace()) == Some(&b'(');
                (word_class(&word, called), len)
            }
            _ => (Class::Op, 1),
        };
        out.push(class);
        i += len.max(1);
    }
    out
}

/// The length of the run of bytes from `i` that `keep` accepts (at least 1).
fn run(b: &[u8], i: usize, keep: impl Fn(u8) -> bool) -> usize {
    b[i..]
        .iter()
        .position(|&x| !keep(x))
        .unwrap_or(b.len() - i)
        .max(1)
}

fn word_class(word: &str, called: bool) -> Class {
    match word {
        "and" | "or" | "xor" | "not" => Class::Logic,
        "union" => Class::Union,
        "select" => Class::Select,
        w if called && DELAYS.contains(&w) => Class::DelayCall,
        w if STATEMENTS.contains(&w) => Class::Statement,
        w if COMPARES.contains(&w) => Class::Compare,
        w if KEYWORDS.contains(&w) => Class::Keyword,
        _ => Class::Word,
    }
}

/// Whether a value, read as SQL in any of the three contexts, has the shape of an injection.
pub fn is_sql_injection(value: &str) -> bool {
    if value.len() < 3 {
        return false;
    }
    ["", "'", "\""]
        .iter()
        .any(|prefix| injection_shape(&sql_classes(prefix, value), !prefix.is_empty()))
}

/// Whether what follows a logic operator is a test: an operand then a comparison, a comment or
/// a closing parenthesis, or a call (`SLEEP(`) or a parenthesis.
fn boolean_test(rest: &[Class]) -> bool {
    use Class::*;
    let operand = matches!(
        rest.first(),
        Some(Str | Num | Word | Variable | Keyword | DelayCall | Open)
    );
    operand
        && (matches!(rest.get(1), Some(Compare | Comment | Close))
            || matches!(rest.first(), Some(DelayCall | Open)))
}

fn injection_shape(c: &[Class], quoted: bool) -> bool {
    use Class::*;
    for i in 0..c.len() {
        let next = c.get(i + 1);
        match c[i] {
            // UNION [ALL|DISTINCT] SELECT <columns>
            Union => {
                let j = if c.get(i + 1) == Some(&Keyword) {
                    i + 2
                } else {
                    i + 1
                };
                if c.get(j) == Some(&Select) && selects_columns(&c[j + 1..]) {
                    return true;
                }
            }
            // ; DROP TABLE ... / ; SELECT ...
            Semicolon => match (next, c.get(i + 2), c.get(i + 3)) {
                (Some(Statement), None | Some(Keyword | Comment | Semicolon), _) => return true,
                (Some(Statement), Some(Word), Some(Keyword)) => return true,
                (Some(Select), ..) if selects_columns(&c[i + 2..]) => return true,
                _ => {}
            },
            // SLEEP( / BENCHMARK( anywhere in an expression
            DelayCall if i > 0 || quoted => return true,
            // (SELECT ...) subquery
            Open if next == Some(&Select) && selects_columns(&c[i + 2..]) => return true,
            // 'x' OR 'a'='a / 1 OR 1=1 / ' AND SLEEP(5)
            Str | Num | Close
                if next == Some(&Logic)
                    && boolean_test(&c[i + 2..])
                    && (c[i] != Num || i == 0 || quoted) =>
            {
                return true
            }
            // admin'-- / ' # : a closed string then the rest commented out
            Str if quoted && i == 0 && matches!(next, Some(Comment)) => return true,
            // '; ... / ') ... : breaking out of the string into a statement
            Str if quoted
                && i == 0
                && next == Some(&Semicolon)
                && matches!(c.get(i + 2), Some(Statement | Select | Comment) | None) =>
            {
                return true
            }
            _ => {}
        }
    }
    false
}

/// Whether what follows `SELECT` reads as a column list: a number, string, variable, `*`,
/// keyword (`NULL`), a delay call, or a name followed by `,`, `FROM`, a comment or a call.
fn selects_columns(rest: &[Class]) -> bool {
    use Class::*;
    match rest.first() {
        Some(Num | Str | Variable | Op | Keyword | DelayCall) => true,
        Some(Word) => matches!(rest.get(1), Some(Comma | Keyword | Comment | Open)),
        _ => false,
    }
}

const XSS_TAGS: &[&str] = &[
    "script", "iframe", "object", "embed", "svg", "math", "base", "frameset", "applet", "meta",
];

/// Whether text holds an HTML tag or URL that runs script.
pub fn is_xss(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("javascript:")
        || compact.contains("vbscript:")
        || compact.contains("data:text/html")
    {
        return starts_value(&compact);
    }
    let b = lower.as_bytes();
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&x| x == b'<') {
        let start = i + p + 1;
        let name_len = b[start..]
            .iter()
            .position(|x| !x.is_ascii_alphanumeric())
            .unwrap_or(b.len() - start);
        if name_len > 0 {
            let name = &lower[start..start + name_len];
            if XSS_TAGS.contains(&name) {
                return true;
            }
            let end = b[start..]
                .iter()
                .position(|&x| x == b'>')
                .map_or(b.len(), |e| start + e);
            if has_handler(&lower[start + name_len..end]) {
                return true;
            }
        }
        i = start;
    }
    false
}

/// Whether the `javascript:`-like scheme starts a value (not mid-word prose).
fn starts_value(compact: &str) -> bool {
    ["javascript:", "vbscript:", "data:text/html"]
        .iter()
        .any(|scheme| {
            compact
                .match_indices(scheme)
                .any(|(at, _)| at == 0 || !compact.as_bytes()[at - 1].is_ascii_alphanumeric())
        })
}

/// Whether a tag's attribute text has an `on…=` event handler.
fn has_handler(attributes: &str) -> bool {
    let b = attributes.as_bytes();
    attributes.match_indices("on").any(|(at, _)| {
        let starts = at == 0 || matches!(b[at - 1], b' ' | b'/' | b'\t' | b'\n' | b'"' | b'\'');
        let rest = &b[at + 2..];
        let name = rest
            .iter()
            .position(|x| !x.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        starts && name > 0 && rest[name..].iter().find(|x| !x.is_ascii_whitespace()) == Some(&b'=')
    })
}

const SENSITIVE: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/hosts",
    "win.ini",
    "boot.ini",
    "system32",
    "proc/self",
    ".ssh/",
    "id_rsa",
    "web.config",
    ".htpasswd",
];

/// Whether a path climbs with dot-only segments (`..`, `....`), or reaches a sensitive file
/// through one.
pub fn traverses(path: &str) -> bool {
    let segments: Vec<&str> = path.split(['/', '\\']).collect();
    let climbs = segments
        .iter()
        .filter(|s| s.len() >= 2 && s.bytes().all(|b| b == b'.'))
        .count();
    if climbs == 0 {
        return false;
    }
    let lower = path.to_ascii_lowercase().replace('\\', "/");
    climbs >= 2 || SENSITIVE.iter().any(|s| lower.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACKS: &[(&str, Findings)] = &[
        ("/api/v1/items?id=1%27%20OR%20%271%27%3D%271", SQL),
        ("/api/v1/search?q=%27%3B%20DROP%20TABLE%20users%3B--", SQL),
        (
            "/api/v1/users?id=1%20UNION%20SELECT%20username,password%20FROM%20users",
            SQL,
        ),
        ("/api/v1/orders?sort=(SELECT%20SLEEP(5))", SQL),
        ("/login?user=admin%27--", SQL),
        ("/item?id=1 AND 1=1", SQL),
        ("/item?id=1' AND SLEEP(5)-- -", SQL),
        ("/item?id=-1 UNION ALL SELECT NULL,NULL,version()--", SQL),
        ("/q?x=%2527%2520OR%25201%253D1", SQL),
        ("/api/v1/search?q=%3Cscript%3Ealert(1)%3C/script%3E", XSS),
        (
            "/api/v1/profile?name=%3Cimg%20src%3Dx%20onerror%3Dalert(document.cookie)%3E",
            XSS,
        ),
        ("/api/v1/comments?text=javascript:alert(%27xss%27)", XSS),
        ("/p?x=<svg/onload=alert(1)>", XSS),
        ("/static/../../../../etc/passwd", TRAVERSAL),
        ("/api/v1/files?path=..%2F..%2F..%2Fetc%2Fshadow", TRAVERSAL),
        ("/download?file=....//....//windows/win.ini", TRAVERSAL),
        ("/f?p=..\\..\\boot.ini", TRAVERSAL),
    ];
    const SQL: Findings = Findings {
        sql_injection: true,
        xss: false,
        path_traversal: false,
    };
    const XSS: Findings = Findings {
        sql_injection: false,
        xss: true,
        path_traversal: false,
    };
    const TRAVERSAL: Findings = Findings {
        sql_injection: false,
        xss: false,
        path_traversal: true,
    };

    #[test]
    fn attacks_are_found_as_their_kind() {
        for (target, expected) in ATTACKS {
            let found = inspect(target);
            assert!(
                (expected.sql_injection <= found.sql_injection)
                    && (expected.xss <= found.xss)
                    && (expected.path_traversal <= found.path_traversal),
                "{target}: {found:?}"
            );
        }
    }

    const BENIGN: &[&str] = &[
        "/api/v1/products?q=select+comfort+mattress",
        "/api/v1/products/union-jack-cushion",
        "/api/v1/search?q=union%20select%20chair",
        "/api/v1/products?name=Drop%20Leaf%20Table&sort=price",
        "/api/v1/search?q=O%27Reilly%20books",
        "/api/v1/search?q=rock+and+roll",
        "/api/v1/search?q=tom%20%26%20jerry",
        "/api/v1/items?id=42&order=desc",
        "/api/v1/notes?text=1%20or%202%20apples",
        "/blog/2024/on-the-road",
        "/api/v1/search?q=%3C3%20cats",
        "/api/v1/search?q=javascript%20tutorial",
        "/docs/../index.html",
        "/api/v1/files/report..final.pdf",
        "/api/v1/search?q=select%20the%20best%20one%3B%20drop%20me%20a%20line",
        "/api/v1/reviews?text=it's+great,+isn't+it",
        "/api/v1/search?q=2%3E1",
        "/api/v1/users?sort=name,email",
        "/api/v1/search?q=sleep%20apnea",
        "/wp-content/themes/onion/style.css",
    ];

    #[test]
    fn look_alikes_are_not_attacks() {
        for target in BENIGN {
            assert!(!inspect(target).any(), "{target}: {:?}", inspect(target));
        }
    }

    #[test]
    fn decoding_keeps_invalid_escapes() {
        assert_eq!(url_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(target in ".{0,300}") {
            let _ = inspect(&target);
        }

        #[test]
        fn never_panics_on_bytes_of_attacks(noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let text = String::from_utf8_lossy(&noise);
            let _ = inspect(&format!("/x?q='{text}<on{text}../"));
        }
    }
}
