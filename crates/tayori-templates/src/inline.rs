//! CSS inlined into HTML templates once, when they load: never per render.
//!
//! css-inline works on HTML, and a template is HTML with tera tags in it, which an HTML parser
//! would move or mangle (text between table rows is moved out of the table, for one). So each
//! tera tag is first replaced by a placeholder the parser keeps where it is: an HTML comment
//! where text may stand, a plain word inside an attribute value, the title or a comment. The
//! stylesheet is inlined into the protected HTML, and the tags are put back. A tag the parser
//! would not keep in place (between the attributes of an element, or inside `<style>`) is
//! refused with its line, and so is any placeholder that does not come back exactly once.

use std::borrow::Cow;

/// Why a template's CSS cannot be inlined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InlineError {
    /// The 1-based line in the template, when the problem has one.
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

/// A piece of a template: HTML, or one tera tag (`{{ … }}`, `{% … %}`, `{# … #}`, or a whole
/// `{% raw %} … {% endraw %}`).
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Html(&'a str),
    Tera { text: &'a str, line: usize },
}

/// Splits a template into HTML and tera tags. An unclosed tag runs to the end (tera reports it
/// when the template is compiled).
fn pieces(source: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = source;
    let mut offset = 0;
    while let Some(start) = find_tag_start(rest) {
        if start > 0 {
            pieces.push(Piece::Html(&rest[..start]));
        }
        let tag = &rest[start..];
        let close = match &tag[..2] {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        let mut end = tag[2..].find(close).map_or(tag.len(), |i| i + 2 + close.len());
        if close == "%}" && is_raw_open(&tag[..end]) {
            end = find_endraw(tag, end).unwrap_or(tag.len());
        }
        let line = source[..offset + start].matches('\n').count() + 1;
        pieces.push(Piece::Tera { text: &tag[..end], line });
        rest = &tag[end..];
        offset += start + end;
    }
    if !rest.is_empty() {
        pieces.push(Piece::Html(rest));
    }
    pieces
}

fn find_tag_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(1))
        .find(|&i| bytes[i] == b'{' && matches!(bytes[i + 1], b'{' | b'%' | b'#'))
}

fn is_raw_open(tag: &str) -> bool {
    tag.trim_start_matches("{%")
        .trim_start_matches('-')
        .trim_end_matches("%}")
        .trim_end_matches('-')
        .trim()
        == "raw"
}

/// The end of the `{% endraw %}` after a `{% raw %}` that ends at `from`.
fn find_endraw(tag: &str, from: usize) -> Option<usize> {
    let mut search = from;
    while let Some(start) = tag[search..].find("{%").map(|i| i + search) {
        let end = tag[start..].find("%}").map(|i| i + start + 2)?;
        let inner = tag[start + 2..end - 2].trim_matches('-').trim();
        if inner == "endraw" {
            return Some(end);
        }
        search = end;
    }
    None
}

/// Where the HTML parser stands at a point of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Between elements: an HTML comment stays where it is.
    Text,
    /// Inside `<title>` or `<textarea>`: text is kept as written.
    RawText,
    /// Inside `<style>` or `<script>`: css-inline reads or drops it.
    Code,
    /// Inside a start or end tag, outside quotes: a word here would become an attribute.
    Tag,
    /// Inside a quoted attribute value.
    Attribute(u8),
    /// Inside an HTML comment: kept as written.
    Comment,
}

/// Follows the HTML between tera tags, well enough to know where a tag lands.
struct Scanner {
    context: Context,
    /// The name of the element whose start tag is being read (lowercase).
    element: String,
    reading_name: bool,
    closing: bool,
    /// In `RawText` or `Code`: the end tag that closes it.
    raw_end: &'static str,
}

impl Scanner {
    fn new() -> Self {
        Self {
            context: Context::Text,
            element: String::new(),
            reading_name: false,
            closing: false,
            raw_end: "",
        }
    }

    fn feed(&mut self, html: &str) {
        let bytes = html.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.context {
                Context::Text => {
                    if bytes[i..].starts_with(b"<!--") {
                        self.context = Context::Comment;
                        i += 4;
                        continue;
                    }
                    if b == b'<'
                        && bytes.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == b'/')
                    {
                        self.context = Context::Tag;
                        self.closing = bytes[i + 1] == b'/';
                        self.element.clear();
                        self.reading_name = true;
                        i += if self.closing { 2 } else { 1 };
                        continue;
                    }
                }
                Context::Comment => {
                    if bytes[i..].starts_with(b"-->") {
                        self.context = Context::Text;
                        i += 3;
                        continue;
                    }
                }
                Context::RawText | Context::Code => {
                    if bytes
                        .get(i..i + self.raw_end.len())
                        .is_some_and(|end| end.eq_ignore_ascii_case(self.raw_end.as_bytes()))
                    {
                        // The rest of the end tag, up to `>`, is read as a tag.
                        self.context = Context::Tag;
                        self.closing = true;
                        self.reading_name = false;
                        i += self.raw_end.len();
                        continue;
                    }
                }
                Context::Tag => {
                    if self.reading_name {
                        if b.is_ascii_alphanumeric() || b == b'-' {
                            self.element.push(b.to_ascii_lowercase() as char);
                            i += 1;
                            continue;
                        }
                        self.reading_name = false;
                    }
                    match b {
                        b'"' | b'\'' => self.context = Context::Attribute(b),
                        b'>' => {
                            self.context = Context::Text;
                            if !self.closing {
                                match self.element.as_str() {
                                    "title" | "textarea" => {
                                        self.context = Context::RawText;
                                        self.raw_end = if self.element == "title" {
                                            "</title"
                                        } else {
                                            "</textarea"
                                        };
                                    }
                                    "style" | "script" => {
                                        self.context = Context::Code;
                                        self.raw_end = if self.element == "style" {
                                            "</style"
                                        } else {
                                            "</script"
                                        };
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Context::Attribute(quote) => {
                    if b == quote {
                        self.context = Context::Tag;
                    }
                }
            }
            i += 1;
        }
    }
}

/// A marker no template contains (checked), followed by the tag's number.
const MARK: &str = "tyrtag";

fn comment_placeholder(index: usize) -> String {
    format!("<!--{MARK}{index}-->")
}

fn word_placeholder(index: usize) -> String {
    format!("{MARK}{index}x")
}

/// Inlines `css` into an HTML template, keeping its tera tags. `css` may be empty: the
/// template's own `<style>` elements are still inlined (and their `@media` rules kept in a
/// `<style>`). A template with a `<html` element is inlined as a document, any other as a
/// fragment (a body's blocks, a partial).
pub(crate) fn inline_template(source: &str, css: &str) -> Result<String, InlineError> {
    if source.contains(MARK) {
        return Err(InlineError {
            line: None,
            message: format!("the template may not contain the text {MARK:?}"),
        });
    }
    let mut protected = String::with_capacity(source.len() + 64);
    let mut placeholders: Vec<(String, &str, usize)> = Vec::new();
    let mut scanner = Scanner::new();
    for piece in pieces(source) {
        match piece {
            Piece::Html(html) => {
                scanner.feed(html);
                protected.push_str(html);
            }
            Piece::Tera { text, line } => {
                let index = placeholders.len();
                let placeholder = match scanner.context {
                    Context::Text => comment_placeholder(index),
                    Context::RawText | Context::Attribute(_) | Context::Comment => {
                        word_placeholder(index)
                    }
                    Context::Tag => {
                        return Err(InlineError {
                            line: Some(line),
                            message: format!(
                                "cannot inline CSS around `{}` between an element's attributes: \
                                 put the tag inside an attribute value (class=\"{{% if x %}}a{{% \
                                 endif %}}\") or around the whole element",
                                short(text)
                            ),
                        });
                    }
                    Context::Code => {
                        return Err(InlineError {
                            line: Some(line),
                            message: format!(
                                "cannot inline CSS with `{}` inside <style> or <script>: styles \
                                 cannot depend on the data",
                                short(text)
                            ),
                        });
                    }
                };
                protected.push_str(&placeholder);
                placeholders.push((placeholder, text, line));
            }
        }
    }

    let is_document = source.to_ascii_lowercase().contains("<html");
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_at_rules(true)
        .extra_css((is_document && !css.is_empty()).then_some(Cow::Borrowed(css)))
        .build();
    let inlined = if is_document {
        inliner.inline(&protected)
    } else {
        inliner.inline_fragment(&protected, css)
    }
    .map_err(|error| InlineError { line: None, message: format!("cannot inline CSS: {error}") })?;

    check_elements_kept(&protected, &inlined, source)?;
    // The parser adds a <tbody> to every table that has none. Where a tag stands between the
    // table and its first row (`{% for %}<tr>`), the added <tbody> would be repeated by the loop
    // but closed once: the template did not ask for it, so it goes.
    let inlined = if start_tags(&protected).contains_key("tbody") {
        inlined
    } else {
        inlined.replace("<tbody>", "").replace("</tbody>", "")
    };
    restore(&inlined, &placeholders)
}

/// The HTML parser drops elements that cannot stand where they are (a `<tr>` in a partial,
/// outside any `<table>`): refuse such a template rather than lose part of it.
fn check_elements_kept(before: &str, after: &str, source: &str) -> Result<(), InlineError> {
    let counted = start_tags(before);
    let kept = start_tags(after);
    for (name, count) in &counted {
        let now = kept.get(name).copied().unwrap_or(0);
        if now < *count {
            let needle = format!("<{name}");
            let line = source
                .to_ascii_lowercase()
                .find(&needle)
                .map(|at| crate::locate::line_at(source, at));
            return Err(InlineError {
                line,
                message: format!(
                    "cannot inline CSS: the HTML parser drops <{name}> here, as it cannot stand \
                     where it is (a <tr> or <td> outside a <table> in a partial?); give the file \
                     whole elements"
                ),
            });
        }
    }
    Ok(())
}

/// How many start tags of each element the HTML has (names in lowercase).
fn start_tags(html: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let bytes = html.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'<' && bytes[i + 1].is_ascii_alphabetic() {
            let name: String = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .map(|b| b.to_ascii_lowercase() as char)
                .collect();
            i += name.len();
            *counts.entry(name).or_insert(0) += 1;
        }
        i += 1;
    }
    counts
}

/// Puts each tera tag back in place of its placeholder, which must be there exactly once.
fn restore(inlined: &str, placeholders: &[(String, &str, usize)]) -> Result<String, InlineError> {
    let mut out = String::with_capacity(inlined.len() + 256);
    let mut rest = inlined;
    let mut seen = vec![0usize; placeholders.len()];
    while let Some(start) = rest.find(MARK) {
        let digits_start = start + MARK.len();
        let digits = rest[digits_start..].bytes().take_while(u8::is_ascii_digit).count();
        let index: Option<usize> = rest[digits_start..digits_start + digits].parse().ok();
        let Some(index) = index.filter(|i| *i < placeholders.len()) else {
            out.push_str(&rest[..digits_start]);
            rest = &rest[digits_start..];
            continue;
        };
        let (placeholder, original, _) = &placeholders[index];
        // The placeholder as written, or (for a comment where the parser took text) escaped.
        let (before, after) = if placeholder.starts_with("<!--") {
            (["<!--", "&lt;!--"], ["-->", "--&gt;"])
        } else {
            ([""; 2], ["x"; 2])
        };
        let end = digits_start + digits;
        let matched = before.iter().zip(after.iter()).find_map(|(b, a)| {
            let head = start.checked_sub(b.len())?;
            (rest.get(head..start) == Some(*b) && rest[end..].starts_with(a))
                .then_some((head, end + a.len()))
        });
        match matched {
            Some((head, tail)) => {
                out.push_str(&rest[..head]);
                out.push_str(original);
                seen[index] += 1;
                rest = &rest[tail..];
            }
            None => {
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    out.push_str(rest);
    for ((_, original, line), count) in placeholders.iter().zip(seen) {
        if count != 1 {
            return Err(InlineError {
                line: Some(*line),
                message: format!(
                    "cannot inline CSS: the HTML around `{}` does not parse as written (an \
                     unclosed element, or a tag where HTML allows none?)",
                    short(original)
                ),
            });
        }
    }
    Ok(out)
}

/// A tag shortened for a message.
fn short(tag: &str) -> Cow<'_, str> {
    let one_line = tag.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        Cow::Owned(format!("{}…", one_line.chars().take(60).collect::<String>()))
    } else {
        Cow::Owned(one_line)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_tera_tags() {
        let source = "a{{ x }}b\n{% if y %}c{# n #}{% raw %}{{ z }}{% endraw %}{{ open";
        let found: Vec<String> = pieces(source)
            .iter()
            .map(|p| match p {
                Piece::Html(h) => format!("H{h}"),
                Piece::Tera { text, line } => format!("T{line}{text}"),
            })
            .collect();
        assert_eq!(
            found,
            [
                "Ha",
                "T1{{ x }}",
                "Hb\n",
                "T2{% if y %}",
                "Hc",
                "T2{# n #}",
                "T2{% raw %}{{ z }}{% endraw %}",
                "T2{{ open"
            ]
        );
    }

    #[test]
    fn inlines_around_tera_tags_in_tables_attributes_and_titles() {
        let css = ".k { color: #555 } p { margin: 0 }";
        let source = "{% extends \"_layouts/base.html\" %}{% block content %}\
            <p>Hi {{ to.name }}</p>\n<table>{% for row in rows %}<tr><td class=\"k\">{{ row.k }}\
            </td><td class=\"{% if row.hot %}hot{% endif %}\">{{ row.v }}</td></tr>{% endfor %}\
            </table>{% endblock %}";
        let out = inline_template(source, css).unwrap();
        assert!(
            out.starts_with("{% extends \"_layouts/base.html\" %}{% block content %}"),
            "{out}"
        );
        assert!(out.contains("<p style=\"margin: 0;\">Hi {{ to.name }}</p>"), "{out}");
        assert!(out.contains("{% for row in rows %}<tr>"), "{out}");
        assert!(
            out.contains("class=\"k\" style=\"color: #555;\">{{ row.v }}")
                || out.contains("style=\"color: #555;\">{{ row.k }}"),
            "{out}"
        );
        assert!(out.contains("class=\"{% if row.hot %}hot{% endif %}\""), "{out}");
        assert!(out.contains("</tr>{% endfor %}"), "{out}");
        assert!(out.ends_with("{% endblock %}"), "{out}");

        let document = "<!DOCTYPE html>\n<html lang=\"{% block lang %}ja{% endblock %}\">\
            <head><title>{% block title %}{% endblock %}</title>\
            <style>h1 { color: red } @media (max-width: 600px) { h1 { font-size: 18px } }</style>\
            </head><body><h1>{{ tenant.from_name }}</h1>{% block content %}{% endblock %}</body></html>";
        let out = inline_template(document, "").unwrap();
        assert!(out.starts_with("<!DOCTYPE html>"), "{out}");
        assert!(out.contains("<html lang=\"{% block lang %}ja{% endblock %}\">"), "{out}");
        assert!(out.contains("<title>{% block title %}{% endblock %}</title>"), "{out}");
        assert!(out.contains("<h1 style=\"color: red;\">{{ tenant.from_name }}</h1>"), "{out}");
        assert!(out.contains("@media (max-width: 600px)"), "{out}");
    }

    #[test]
    fn refuses_html_the_parser_would_drop() {
        let error = inline_template(
            "{% macro row(a) %}\n<tr><td>{{ a }}</td></tr>{% endmacro %}",
            "td { color: red }",
        )
        .unwrap_err();
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("drops <t"), "{error:?}");
    }

    #[test]
    fn refuses_tags_the_parser_would_move() {
        let error = inline_template("<p>\n<td {% if x %}class=\"a\"{% endif %}>", "").unwrap_err();
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("between an element's attributes"), "{error:?}");
        let error = inline_template("<style>p { color: {{ c }} }</style>", "").unwrap_err();
        assert!(error.message.contains("inside <style>"), "{error:?}");
    }
}
