//! What the check expects of each Finexer answer: field path, JSON type, and
//! what our code does with the field. This is the one table;
//! `docs/finexer-api.md` shows it as rendered by [`markdown`] (a test keeps the
//! two equal), and `finexer-check --print-expected` prints it.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Finexer's consent statuses (docs/finexer-api.md, Consents).
pub const STATUSES: &[&str] = &[
    "new",
    "pending",
    "authorized",
    "failed",
    "expired",
    "canceled",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Boolean,
    Object,
    Array,
    /// A string: ISO-8601 time, or a `YYYY-MM-DD` date.
    Timestamp,
    /// A string: an absolute http(s) URL.
    Url,
    /// A string: one of [`STATUSES`].
    Status,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Boolean => "boolean",
            Kind::Object => "object",
            Kind::Array => "array",
            Kind::Timestamp => "timestamp",
            Kind::Url => "URL",
            Kind::Status => "status",
        }
    }

    fn json_type(self) -> &'static str {
        match self {
            Kind::Integer => "integer",
            Kind::Boolean => "boolean",
            Kind::Object => "object",
            Kind::Array => "array",
            _ => "string",
        }
    }
}

/// What our code does with a field, which decides how much a difference matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The journey reads it: missing, null or of another type breaks it.
    Journey,
    /// Our client parses it when present: another type breaks the parse;
    /// missing or null is fine.
    Parsed,
    /// As `Journey` in the answer to a create (create-link reads it there), as
    /// `Parsed` in every other answer.
    JourneyOnCreate,
    /// Documented, but only passed through or informative: a difference is a note.
    Documented,
}

impl Use {
    fn name(self) -> &'static str {
        match self {
            Use::Journey => "journey",
            Use::Parsed => "parsed",
            Use::JourneyOnCreate => "journey (create), parsed (reads)",
            Use::Documented => "documented",
        }
    }
}

pub struct Field {
    /// Dotted path; `name[]` means every element of the array `name`.
    pub path: &'static str,
    pub kind: Kind,
    pub nullable: bool,
    pub usage: Use,
    /// H, M or I, as docs/finexer-api.md marks the assumption.
    pub confidence: &'static str,
    /// What depends on it: the hint printed with a difference.
    pub why: &'static str,
}

pub struct Shape {
    /// The answer, as the doc's table names it.
    pub name: &'static str,
    pub fields: &'static [Field],
}

const fn field(
    path: &'static str,
    kind: Kind,
    nullable: bool,
    usage: Use,
    confidence: &'static str,
    why: &'static str,
) -> Field {
    Field {
        path,
        kind,
        nullable,
        usage,
        confidence,
        why,
    }
}

use Kind as K;
use Use as U;

#[rustfmt::skip]
pub const PROVIDERS: Shape = Shape {
    name: "GET /providers",
    fields: &[
        field("data", K::Array, false, U::Journey, "H", "the list a platform's bank picker shows"),
        field("data[].id", K::String, false, U::Journey, "H", "a platform passes it to POST /links as `provider`"),
        field("data[].name", K::String, true, U::Parsed, "H", "the bank's name in a picker; recorded as the consent's `bank_name`"),
        field("data[].roles", K::Array, false, U::Documented, "H", "`roles[]=ais` filters on it"),
        field("data[].logo_url", K::Url, true, U::Documented, "H", "a picker's logo"),
        field("data[].bg_colors", K::Array, true, U::Documented, "H", "a picker's colours"),
        field("data[].health_status", K::String, true, U::Documented, "H", "whether the bank is up"),
        field("count", K::Integer, false, U::Documented, "H", "the list envelope"),
        field("paging", K::Object, false, U::Documented, "H", "the list envelope (offset paging)"),
    ],
};

#[rustfmt::skip]
pub const CUSTOMER: Shape = Shape {
    name: "POST /customers",
    fields: &[
        field("id", K::String, false, U::Journey, "H", "every consent and account list names the customer"),
        field("object", K::String, false, U::Documented, "H", "`customer`"),
    ],
};

#[rustfmt::skip]
pub const CONSENT: Shape = Shape {
    name: "consent (POST /consents, GET /consents/{id}, POST /consents/{id}/revoke)",
    fields: &[
        field("id", K::String, false, U::Journey, "H", "our record's key; the callback and revoke name it"),
        field("status", K::Status, false, U::Journey, "H", "create-link needs `pending`, the callback an outcome, a revoke `canceled`"),
        field("redirect", K::Object, false, U::JourneyOnCreate, "M", "holds the consent page"),
        field("redirect.consent_url", K::Url, false, U::JourneyOnCreate, "M", "create-link sends the user's browser there"),
        field("redirect.return_url", K::Url, true, U::Parsed, "M", "must keep our `state` parameter"),
        field("customer", K::String, true, U::Parsed, "M", "the customer the consent belongs to"),
        field("provider", K::String, true, U::Parsed, "M", "recorded as the consent's bank; its `name` in `GET /providers` is the `bank_name`"),
        field("authed_at", K::Timestamp, true, U::Parsed, "M", "recorded as `authorized_at`"),
        field("expiry_date", K::Timestamp, true, U::Parsed, "M", "recorded as `expires_at`"),
        field("object", K::String, false, U::Documented, "M", "`consent`"),
        field("created_at", K::Timestamp, false, U::Documented, "M", "informative"),
        field("updated_at", K::Timestamp, false, U::Documented, "M", "informative"),
        field("renewed_at", K::Timestamp, true, U::Documented, "M", "the UK 90-day re-confirmation"),
        field("consent_link", K::Url, true, U::Documented, "M", "informative"),
        field("scopes", K::Array, false, U::Documented, "M", "what the user is asked to share"),
        field("retro_date", K::Timestamp, true, U::Documented, "M", "how far back transactions go"),
        field("failure_code", K::String, true, U::Documented, "M", "why a consent failed"),
        field("failure_message", K::String, true, U::Documented, "M", "why a consent failed"),
        field("metadata", K::Object, false, U::Documented, "M", "carries our `state_id`"),
    ],
};

#[rustfmt::skip]
pub const BANK_ACCOUNTS: Shape = Shape {
    name: "GET /bank_accounts",
    fields: &[
        field("data", K::Array, false, U::Journey, "H", "GET /consents/{id}/accounts and GET /accounts answer it"),
        field("data[].id", K::String, false, U::Documented, "M", "passed through to the platform"),
        field("data[].object", K::String, false, U::Documented, "M", "`bank_account`"),
        field("data[].consent", K::String, false, U::Documented, "M", "passed through to the platform"),
        field("data[].customer", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].provider", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].holder_name", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].nickname", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].currency", K::String, false, U::Documented, "M", "passed through to the platform"),
        field("data[].type", K::String, false, U::Documented, "M", "passed through to the platform"),
        field("data[].class", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].identification", K::Object, false, U::Documented, "M", "passed through to the platform"),
        field("data[].identification.sort_code", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].identification.account_number", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].identification.iban", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].identification.pan", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].fingerprint", K::String, true, U::Documented, "M", "passed through to the platform"),
        field("data[].created_at", K::Timestamp, false, U::Documented, "M", "passed through to the platform"),
        field("count", K::Integer, false, U::Documented, "H", "the list envelope"),
        field("paging", K::Object, false, U::Documented, "H", "the list envelope (offset paging)"),
    ],
};

#[rustfmt::skip]
pub const ERROR: Shape = Shape {
    name: "an error answer (4xx/5xx)",
    fields: &[
        field("error", K::Object, false, U::Documented, "M", "the error envelope"),
        field("error.type", K::String, false, U::Documented, "M", "the error envelope"),
        field("error.code", K::String, false, U::Parsed, "M", "logged, and decides some answers"),
        field("error.message", K::String, true, U::Parsed, "M", "logged"),
    ],
};

#[rustfmt::skip]
pub const EVENT: Shape = Shape {
    name: "a webhook event (--webhook-secret)",
    fields: &[
        field("id", K::String, false, U::Journey, "M", "deliveries are deduplicated on it"),
        field("object", K::String, false, U::Documented, "M", "`event`"),
        field("type", K::String, false, U::Journey, "M", "decides what the event means"),
        field("data", K::Object, false, U::Journey, "M", "carries the object"),
        field("data.object", K::Object, false, U::Documented, "M", "the changed object (a flat `data` is accepted too)"),
    ],
};

/// Every table, in the order the doc shows them.
pub const ALL: &[&Shape] = &[
    &PROVIDERS,
    &CUSTOMER,
    &CONSENT,
    &BANK_ACCOUNTS,
    &ERROR,
    &EVENT,
];

/// One way an answer differs from the table (or from what a step expects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where, in the answer: `redirect.consent_url`, `data[0].id`.
    pub path: String,
    pub problem: String,
    pub hint: String,
    /// Would break a journey, rather than being a note.
    pub breaking: bool,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

/// Every difference of `answer` from `shape`; `created` when the answer is
/// to a create. A field under one that is already reported (missing, null,
/// another type) is not reported again.
pub fn check(shape: &Shape, answer: &Value, created: bool) -> Vec<Difference> {
    let mut found: Vec<Difference> = Vec::new();
    let mut reported: Vec<&str> = Vec::new();
    for field in shape.fields {
        let usage = match field.usage {
            Use::JourneyOnCreate if created => Use::Journey,
            Use::JourneyOnCreate => Use::Parsed,
            usage => usage,
        };
        if reported.iter().any(|parent| is_under(field.path, parent)) {
            continue;
        }
        let mut located = Vec::new();
        locate(answer, field.path, String::new(), &mut located);
        let total = located.len();
        let mut failing = located.iter().filter_map(|(path, value, parent)| {
            judge(field, usage, *value)
                .map(|(problem, breaking)| (path, problem, breaking, value.is_none(), *parent))
        });
        let Some((path, problem, breaking, missing, parent)) = failing.next() else {
            continue;
        };
        let more = failing.count();
        let mut problem = problem;
        if field.path.contains("[]") && total > 1 {
            problem = format!("{problem} (in {} of {total} items)", more + 1);
        }
        let renamed = parent
            .filter(|_| missing)
            .and_then(|p| renamed_to(shape, field, p));
        let hint = match renamed {
            Some(instead) => format!(
                "the answer has `{}` instead: renamed?; {}",
                sibling_path(path, &instead),
                field.why
            ),
            None => field.why.to_owned(),
        };
        found.push(Difference {
            path: path.clone(),
            problem,
            hint,
            breaking,
        });
        reported.push(field.path);
    }
    found
}

fn is_under(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
}

/// A value found at a path (None: missing), and the object holding it.
type Located<'a> = (
    String,
    Option<&'a Value>,
    Option<&'a serde_json::Map<String, Value>>,
);

/// Where `path` leads in `value`: one entry per array element on the way, each
/// with the value found (None when the last key is missing) and the object
/// holding it. Stops silently where a parent is missing, null or another type:
/// the parent's own row reports that.
fn locate<'a>(value: &'a Value, path: &str, at: String, out: &mut Vec<Located<'a>>) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let Some(object) = value.as_object() else {
        return;
    };
    let (key, each) = match head.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (head, false),
    };
    let here = if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    };
    let child = object.get(key);
    match (rest, each) {
        (None, false) => out.push((here, child, Some(object))),
        (Some(rest), false) => {
            if let Some(child) = child {
                locate(child, rest, here, out);
            }
        }
        (rest, true) => {
            let Some(items) = child.and_then(Value::as_array) else {
                return;
            };
            for (index, item) in items.iter().enumerate() {
                let at = format!("{here}[{index}]");
                match rest {
                    Some(rest) => locate(item, rest, at, out),
                    None => out.push((at, Some(item), None)),
                }
            }
        }
    }
}

/// The problem with one located value, and whether it breaks a journey.
fn judge(field: &Field, usage: Use, value: Option<&Value>) -> Option<(String, bool)> {
    let breaks_if_absent = usage == Use::Journey;
    let breaks_if_wrong = usage != Use::Documented;
    let value = match value {
        None if usage == Use::Parsed => return None,
        None => return Some(("missing".into(), breaks_if_absent)),
        Some(Value::Null) if field.nullable || usage == Use::Parsed => return None,
        Some(Value::Null) => return Some(("is null".into(), breaks_if_absent)),
        Some(value) => value,
    };
    let json_type = match value {
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Null => "null",
    };
    if json_type != field.kind.json_type() {
        return Some((
            format!("is a {json_type}, expected a {}", field.kind.name()),
            breaks_if_wrong,
        ));
    }
    let text = value.as_str().unwrap_or_default();
    match field.kind {
        Kind::Timestamp if !is_timestamp(text) => {
            Some((format!("{text:?} is not an ISO-8601 time or date"), false))
        }
        Kind::Url if !is_web_url(text) => Some((
            "is not an absolute http(s) URL".into(),
            usage == Use::Journey,
        )),
        Kind::Status if STATUSES.contains(&text) => None,
        // Our client reads the British spelling as `canceled`.
        Kind::Status if text == "cancelled" => Some((
            "\"cancelled\" is spelt the British way (docs: `canceled`); our client accepts both"
                .into(),
            false,
        )),
        Kind::Status => Some((
            format!(
                "{text:?} is not one of Finexer's documented statuses ({}); our client keeps it as an unknown status",
                STATUSES.join(", ")
            ),
            true,
        )),
        _ => None,
    }
}

fn is_timestamp(text: &str) -> bool {
    OffsetDateTime::parse(text, &Rfc3339).is_ok()
        || time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .is_ok()
}

fn is_web_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
}

/// A key of the missing field's parent that the table does not know and that
/// looks like the missing one: shares a word with it, or is a short edit away.
fn renamed_to(
    shape: &Shape,
    field: &Field,
    parent: &serde_json::Map<String, Value>,
) -> Option<String> {
    let (prefix, leaf) = match field.path.rsplit_once('.') {
        Some((prefix, leaf)) => (format!("{prefix}."), leaf),
        None => (String::new(), field.path),
    };
    let known: Vec<&str> = shape
        .fields
        .iter()
        .filter_map(|f| f.path.strip_prefix(prefix.as_str()))
        .filter(|rest| !rest.contains('.'))
        .map(|rest| rest.trim_end_matches("[]"))
        .collect();
    let unknown: Vec<&String> = parent
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .collect();
    let words = |text: &str| -> Vec<String> { text.split('_').map(str::to_owned).collect() };
    let leaf_words = words(leaf);
    unknown
        .iter()
        .find(|key| words(key).iter().any(|w| leaf_words.contains(w)))
        .or_else(|| unknown.iter().find(|key| edit_distance(key, leaf) <= 2))
        .map(|key| (*key).clone())
}

fn sibling_path(path: &str, key: &str) -> String {
    match path.rsplit_once('.') {
        Some((parent, _)) => format!("{parent}.{key}"),
        None => key.to_owned(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The tables as docs/finexer-api.md shows them.
pub fn markdown() -> String {
    let mut out = String::new();
    for shape in ALL {
        out.push_str(&format!("#### {}\n\n", shape.name));
        out.push_str("| field | type | our use | conf. | what depends on it |\n");
        out.push_str("|---|---|---|---|---|\n");
        for field in shape.fields {
            let kind = if field.nullable {
                format!("{} or null", field.kind.name())
            } else {
                field.kind.name().to_owned()
            };
            out.push_str(&format!(
                "| `{}` | {kind} | {} | {} | {} |\n",
                field.path,
                field.usage.name(),
                field.confidence,
                field.why
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn consent() -> Value {
        json!({
            "id": "bc_1", "object": "consent", "status": "pending",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "renewed_at": null, "provider": null, "customer": "cus_1",
            "consent_link": "https://connect.finexer.com/c/bc_1",
            "failure_code": null, "failure_message": null, "expiry_date": null,
            "retro_date": null, "scopes": ["accounts"], "authed_at": null,
            "redirect": {"return_url": "https://a.example/cb?state=x", "consent_url": "https://connect.finexer.com/c/bc_1"},
            "metadata": {}
        })
    }

    #[test]
    fn a_documented_consent_has_no_difference() {
        assert_eq!(check(&CONSENT, &consent(), true), vec![]);
    }

    #[test]
    fn a_renamed_field_is_named_with_its_path_and_its_new_name() {
        let mut answer = consent();
        let url = answer["redirect"]
            .as_object_mut()
            .unwrap()
            .remove("consent_url")
            .unwrap();
        answer["redirect"]["url"] = url;
        let found = check(&CONSENT, &answer, true);
        // Only the create's answer must carry the page.
        assert_eq!(check(&CONSENT, &answer, false), vec![]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "redirect.consent_url");
        assert_eq!(found[0].problem, "missing");
        assert!(found[0].breaking);
        assert!(
            found[0]
                .hint
                .starts_with("the answer has `redirect.url` instead"),
            "{}",
            found[0].hint
        );
    }

    #[test]
    fn unknown_statuses_and_types_are_differences_and_children_are_not_repeated() {
        let mut answer = consent();
        answer["status"] = json!("revoked");
        answer["redirect"] = json!("https://x.example");
        answer["authed_at"] = json!(5);
        answer["created_at"] = json!("yesterday");
        answer["object"] = Value::Null;
        let found: Vec<(String, bool)> = check(&CONSENT, &answer, true)
            .into_iter()
            .map(|d| (d.path, d.breaking))
            .collect();
        assert_eq!(
            found,
            [
                ("status".into(), true),
                ("redirect".into(), true),
                ("authed_at".into(), true),
                ("object".into(), false),
                ("created_at".into(), false),
            ]
        );
        answer["status"] = json!("cancelled");
        assert!(!check(&CONSENT, &answer, false)[0].breaking);
    }

    #[test]
    fn list_items_are_reported_once_with_a_count() {
        let answer = json!({"data": [{"id": "a"}, {"name": "b"}, {}], "count": 3, "paging": {}});
        let found = check(&PROVIDERS, &answer, false);
        let ids: Vec<_> = found.iter().filter(|d| d.path.ends_with(".id")).collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].path, "data[1].id");
        assert_eq!(ids[0].problem, "missing (in 2 of 3 items)");
        // The empty list is no difference.
        assert_eq!(
            check(
                &BANK_ACCOUNTS,
                &json!({"data": [], "count": 0, "paging": {}}),
                false
            ),
            vec![]
        );
    }

    #[test]
    fn the_doc_shows_the_tables_as_they_are() {
        let doc = include_str!("../../../docs/finexer-api.md");
        let table = markdown();
        assert!(
            doc.contains(&table),
            "docs/finexer-api.md must contain the output of `finexer-check --print-expected` verbatim"
        );
    }
}
