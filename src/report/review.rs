//! The review page (`--review FILE.html`): one self-contained HTML file for the person who
//! signs off a dry run. It shows the counts by action and website, every field an update
//! changes (before and after), the values of each new customer, the invalid rows with line,
//! column and reason, the rows that failed or were not sent, and the absent customers.
//!
//! The page loads nothing: no script, no stylesheet, font or image from anywhere, its CSS
//! inline; every value is HTML-escaped, and no text spells a URL scheme as is (see [`esc`]).
//! Each table keeps its first [`CAP`] entries and says how many more there are, so that a
//! large run stays readable and costs no memory; the full lists are in the report file and
//! the run history.

use std::fmt::Write as _;
use std::io::Write as _;

use super::WriteError;
use super::summary::{Counts, Summary};
use crate::customer::{Change, Fields};
use crate::outcome::{Action, Outcome, Status};
use crate::outputs::Output;

/// Entries each table shows.
pub const CAP: usize = 200;

/// A customer the state store has and the file no longer names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Absentee {
    pub website_id: u32,
    /// The key's value: the e-mail, or the custom attribute's value under `--key custom:`.
    pub key: String,
    pub customer_id: u64,
}

/// The first [`CAP`] items of a list, and how many more there were.
struct Capped<T> {
    items: Vec<T>,
    more: u64,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped {
            items: Vec::new(),
            more: 0,
        }
    }
}

impl<T> Capped<T> {
    /// Keeps the item if there is room; `make` runs only then.
    fn push(&mut self, make: impl FnOnce() -> T) {
        if self.items.len() < CAP {
            self.items.push(make());
        } else {
            self.more += 1;
        }
    }
}

/// Which row an entry is about.
struct Line {
    line: u64,
    email: String,
    website: String,
}

impl Line {
    fn of(o: &Outcome) -> Self {
        let row = o.row();
        Line {
            line: row.line,
            email: row.email.clone(),
            website: row
                .website_id
                .map_or_else(|| "unknown".to_owned(), |w| w.to_string()),
        }
    }
}

/// What the page lists, gathered as outcomes arrive.
#[derive(Default)]
struct Lists {
    updates: Capped<(Line, Vec<Change>, String)>,
    creates: Capped<(Line, Fields)>,
    invalid: Capped<(Line, Vec<(String, String)>)>,
    failed: Capped<(Line, Status, String)>,
}

impl Lists {
    /// Notes one row in the list it belongs to.
    fn add(&mut self, o: &Outcome) {
        match (o.action(), o.status()) {
            (Action::Invalid, _) => self.invalid.push(|| (Line::of(o), reasons(o.message()))),
            (_, Status::Failed | Status::NotSent) => self
                .failed
                .push(|| (Line::of(o), o.status(), o.message().to_owned())),
            (Action::Update, _) => self.updates.push(|| {
                let note = if o.changes().is_empty() {
                    o.message().to_owned()
                } else {
                    String::new()
                };
                (Line::of(o), o.changes().to_vec(), note)
            }),
            (Action::Create, _) => self.creates.push(|| {
                let values = o.created().map(|c| c.fields()).unwrap_or_default();
                (Line::of(o), values)
            }),
            (Action::Unchanged, _) => {}
        }
    }
}

/// The review page being gathered; see the module doc.
pub struct Review {
    /// Taken, and the page written into it, by [`Review::finish`].
    output: Output,
    lists: Lists,
}

impl Review {
    /// Gathers the page for its claimed file.
    pub fn new(output: Output) -> Self {
        Review {
            output,
            lists: Lists::default(),
        }
    }

    /// Notes one row.
    pub fn add(&mut self, o: &Outcome) {
        self.lists.add(o);
    }

    /// Writes the page, with the run's summary and the first absent customers.
    /// `key_column` names what the absentees' keys are (`email`, or the custom attribute's code).
    pub fn finish(
        mut self,
        summary: &Summary,
        absent: &[Absentee],
        key_column: &str,
    ) -> Result<(), WriteError> {
        // Rows arrive in the order they finished; the page lists them in file order.
        let l = &mut self.lists;
        l.updates.items.sort_by_key(|(line, ..)| line.line);
        l.creates.items.sort_by_key(|(line, _)| line.line);
        l.invalid.items.sort_by_key(|(line, _)| line.line);
        l.failed.items.sort_by_key(|(line, ..)| line.line);
        let page = render(&self.lists, summary, absent, key_column);
        let path = self.output.path().to_owned();
        let mut file = self.output.into_file()?;
        file.write_all(page.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| WriteError { path, source })
    }
}

/// An invalid row's message (`line N: column: reason; column: reason`) as (column, reason)
/// pairs; a part without a column (a malformed line) has an empty column.
fn reasons(message: &str) -> Vec<(String, String)> {
    let body = message
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
        .filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
        .map_or(message, |(_, body)| body);
    body.split("; ")
        .map(|part| match part.split_once(": ") {
            Some((column, reason)) if !column.contains(' ') || column == "malformed CSV" => {
                (column.to_owned(), reason.to_owned())
            }
            _ => (String::new(), part.to_owned()),
        })
        .collect()
}

/// HTML-escapes `text` for an element or a quoted attribute. The `h` of any `http` (in any
/// case) is written as a character reference: the page shows the same text, and nothing in its
/// source looks like a link to fetch.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            'h' | 'H'
                if bytes
                    .get(i + 1..i + 4)
                    .is_some_and(|b| b.eq_ignore_ascii_case(b"ttp")) =>
            {
                let _ = write!(out, "&#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em; color: #1d2327; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccd0d4; padding-bottom: 0.2em; }
.meta { color: #50575e; margin: 0.2em 0; }
.meta code { font-size: 0.9em; }
.verdict { font-size: 1.1em; margin: 1em 0; padding: 0.6em 1em; background: #f0f6fc; border-left: 4px solid #2271b1; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #dcdcde; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f7f7; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafafa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.old { background: #fcf0f1; }
td.new { background: #edfaef; }
tr.total td { font-weight: bold; }
.more { color: #50575e; font-style: italic; }
.none { color: #50575e; }
";

/// The whole page.
fn render(lists: &Lists, s: &Summary, absent: &[Absentee], key_column: &str) -> String {
    let kind = if s.dry_run {
        "Dry run review"
    } else {
        "Run review"
    };
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>custsync: {kind}: {file}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{kind}: {file}</h1>\n",
        file = esc(&s.run.file),
    );
    meta(&mut h, s);
    verdict(&mut h, s);
    counts(&mut h, s);
    updates(&mut h, lists);
    creates(&mut h, lists);
    invalid(&mut h, lists);
    failed(&mut h, lists);
    absentees(&mut h, s, absent, key_column);
    h.push_str("</body>\n</html>\n");
    h
}

fn meta(h: &mut String, s: &Summary) {
    let r = &s.run;
    let _ = writeln!(
        h,
        "<p class=\"meta\">run {} of custsync {}, started {} UTC; target <code>{}</code></p>",
        r.run_id,
        esc(&r.version),
        esc(&r.started_at.replace('T', " ").replace('Z', "")),
        esc(&r.target),
    );
    if let Some(sha) = &r.file_sha256 {
        let _ = writeln!(
            h,
            "<p class=\"meta\">file <code>{}</code>, SHA-256 <code>{}</code></p>",
            esc(&r.file),
            esc(sha)
        );
    }
}

fn verdict(h: &mut String, s: &Summary) {
    let (create, update) = if s.dry_run {
        ("would create", "would update")
    } else {
        ("created", "updated")
    };
    let _ = write!(
        h,
        "<p class=\"verdict\" id=\"verdict\">{} rows: {create} {}, {update} {}, {} unchanged, \
         {} invalid",
        s.rows, s.created, s.updated, s.unchanged, s.invalid
    );
    if s.failed + s.not_sent > 0 {
        let _ = write!(h, ", {} failed, {} not sent", s.failed, s.not_sent);
    }
    let _ = writeln!(
        h,
        "; {} customers in the state store are absent from the file.{}</p>",
        s.absent,
        if s.dry_run { " Nothing was sent." } else { "" }
    );
}

fn counts(h: &mut String, s: &Summary) {
    const HEAD: [&str; 8] = [
        "website",
        "create",
        "update",
        "unchanged",
        "invalid",
        "failed",
        "not sent",
        "rows",
    ];
    h.push_str("<section id=\"counts\">\n<h2>Rows by action and website</h2>\n");
    table_head(h, &HEAD);
    let row = |h: &mut String, name: &str, c: &Counts, class: &str| {
        let _ = write!(h, "<tr{class}><td>{}</td>", esc(name));
        for n in [
            c.created,
            c.updated,
            c.unchanged,
            c.invalid,
            c.failed,
            c.not_sent,
            c.rows(),
        ] {
            let _ = write!(h, "<td class=\"n\">{n}</td>");
        }
        h.push_str("</tr>\n");
    };
    for (website, c) in &s.by_website {
        row(h, &website.to_string(), c, "");
    }
    let total = Counts {
        created: s.created,
        updated: s.updated,
        unchanged: s.unchanged,
        invalid: s.invalid,
        failed: s.failed,
        not_sent: s.not_sent,
    };
    row(h, "total", &total, " class=\"total\"");
    h.push_str("</tbody></table>\n</section>\n");
}

fn updates(h: &mut String, lists: &Lists) {
    let list = &lists.updates;
    section_head(h, "updates", "Updates: the fields that change", list);
    if !list.items.is_empty() {
        table_head(h, &["line", "email", "website", "field", "before", "after"]);
        for (line, changes, note) in &list.items {
            if changes.is_empty() {
                line_cells(h, line);
                let _ = writeln!(h, "<td colspan=\"3\">{}</td></tr>", esc(note));
            }
            for c in changes {
                line_cells(h, line);
                let old = c
                    .old
                    .as_deref()
                    .map_or_else(|| "<span class=\"none\">(none)</span>".to_owned(), esc);
                let _ = writeln!(
                    h,
                    "<td>{}</td><td class=\"old\">{old}</td><td class=\"new\">{}</td></tr>",
                    esc(&c.field),
                    esc(&c.new)
                );
            }
        }
        h.push_str("</tbody></table>\n");
    }
    section_end(h, list.more, "updates");
}

fn creates(h: &mut String, lists: &Lists) {
    let list = &lists.creates;
    section_head(h, "creates", "New customers", list);
    if !list.items.is_empty() {
        table_head(h, &["line", "email", "website", "values"]);
        for (line, values) in &list.items {
            line_cells(h, line);
            h.push_str("<td>");
            for (i, (field, value)) in values.iter().enumerate() {
                let br = if i > 0 { "<br/>" } else { "" };
                let _ = write!(h, "{br}{} = {}", esc(field), esc(value));
            }
            h.push_str("</td></tr>\n");
        }
        h.push_str("</tbody></table>\n");
    }
    section_end(h, list.more, "new customers");
}

fn invalid(h: &mut String, lists: &Lists) {
    let list = &lists.invalid;
    section_head(h, "invalid", "Invalid rows (not sent)", list);
    if !list.items.is_empty() {
        table_head(h, &["line", "email", "website", "column", "reason"]);
        for (line, reasons) in &list.items {
            for (column, reason) in reasons {
                line_cells(h, line);
                let _ = writeln!(h, "<td>{}</td><td>{}</td></tr>", esc(column), esc(reason));
            }
        }
        h.push_str("</tbody></table>\n");
    }
    section_end(h, list.more, "invalid rows");
}

fn failed(h: &mut String, lists: &Lists) {
    let list = &lists.failed;
    if list.items.is_empty() {
        return;
    }
    section_head(h, "failed", "Rows that failed or were not sent", list);
    table_head(h, &["line", "email", "website", "status", "message"]);
    for (line, status, message) in &list.items {
        line_cells(h, line);
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td></tr>",
            status.as_str(),
            esc(message)
        );
    }
    h.push_str("</tbody></table>\n");
    section_end(h, list.more, "rows");
}

fn absentees(h: &mut String, s: &Summary, absent: &[Absentee], key_column: &str) {
    let _ = writeln!(
        h,
        "<section id=\"absent\">\n<h2>Absent customers: in the state store, not in the file ({})</h2>",
        s.absent
    );
    if absent.is_empty() {
        if s.absent == 0 {
            h.push_str("<p class=\"none\">None.</p>\n");
        }
    } else {
        table_head(h, &["website", key_column, "customer id"]);
        for a in absent {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                a.website_id,
                esc(&a.key),
                a.customer_id
            );
        }
        h.push_str("</tbody></table>\n");
    }
    let more = s.absent.saturating_sub(absent.len() as u64);
    if more > 0 {
        let _ = writeln!(
            h,
            "<p class=\"more\">and {more} more absent customers (all of them: --absent-report FILE)</p>"
        );
    }
    h.push_str("</section>\n");
}

fn section_head<T>(h: &mut String, id: &str, title: &str, list: &Capped<T>) {
    let total = list.items.len() as u64 + list.more;
    let _ = writeln!(h, "<section id=\"{id}\">\n<h2>{title} ({total})</h2>");
    if total == 0 {
        h.push_str("<p class=\"none\">None.</p>\n");
    }
}

fn section_end(h: &mut String, more: u64, what: &str) {
    if more > 0 {
        let _ = writeln!(
            h,
            "<p class=\"more\">and {more} more {what} (all of them are in the report file and the \
             run history)</p>"
        );
    }
    h.push_str("</section>\n");
}

fn table_head(h: &mut String, columns: &[&str]) {
    h.push_str("<table>\n<thead><tr>");
    for c in columns {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
}

fn line_cells(h: &mut String, l: &Line) {
    let _ = write!(
        h,
        "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td>",
        l.line,
        esc(&l.email),
        esc(&l.website)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_url_scheme() {
        // (text, escaped)
        let cases = [
            ("a<b>&\"c'", "a&lt;b&gt;&amp;&quot;c&#39;"),
            ("Malmö", "Malmö"),
            ("http://x HTTPS://y", "&#104;ttp://x &#72;TTPS://y"),
            ("hat http", "hat &#104;ttp"),
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(esc(text), want, "{text}");
        }
    }

    #[test]
    fn an_invalid_rows_message_splits_into_columns_and_reasons() {
        let pair = |c: &str, r: &str| (c.to_owned(), r.to_owned());
        // (message) -> (column, reason) pairs
        let cases = [
            (
                "line 4: email: not a valid email address; dob: not a date (YYYY-MM-DD): 1990-13-01",
                vec![
                    pair("email", "not a valid email address"),
                    pair("dob", "not a date (YYYY-MM-DD): 1990-13-01"),
                ],
            ),
            (
                "line 9: malformed CSV: 3 fields, the header has 4",
                vec![pair("malformed CSV", "3 fields, the header has 4")],
            ),
            (
                "line 5: custom:loyalty_no: too long",
                vec![pair("custom:loyalty_no", "too long")],
            ),
            ("something else", vec![pair("", "something else")]),
        ];
        for (message, want) in cases {
            assert_eq!(reasons(message), want, "{message}");
        }
    }

    #[test]
    fn lists_are_capped_and_say_how_many_more() {
        let mut list = Capped::default();
        for i in 0..CAP + 5 {
            list.push(|| i);
        }
        assert_eq!((list.items.len(), list.more), (CAP, 5));

        let row = |line| crate::outcome::RowRef {
            line,
            email: format!("r{line}@x.io"),
            website_id: Some(1),
        };
        let mut lists = Lists::default();
        for line in 2..CAP as u64 + 4 {
            lists.add(&Outcome::invalid(
                row(line),
                format!("line {line}: dob: bad"),
            ));
        }
        let summary = Summary {
            rows: CAP as u64 + 2,
            invalid: CAP as u64 + 2,
            absent: 3,
            ..Summary::default()
        };
        let absent = [Absentee {
            website_id: 1,
            key: "K-1".into(),
            customer_id: 9,
        }];
        let page = render(&lists, &summary, &absent, "legacy_id");
        assert!(
            page.contains("<h2>Invalid rows (not sent) (202)</h2>"),
            "{page}"
        );
        assert!(page.contains("and 2 more invalid rows"));
        assert!(
            page.contains("<th>legacy_id</th>"),
            "the key's column names it"
        );
        assert!(page.contains("<td>K-1</td>"));
        assert!(page.contains("and 2 more absent customers"));
        assert!(
            !page.contains("id=\"failed\""),
            "no failed section without failed rows"
        );
        assert!(
            page.contains("Run review"),
            "a real run is not called a dry run"
        );
    }
}
