//! Finding the line an error is about, where the library that reports it does not say: tera 1
//! names the variable that is undefined but not its line, and a JSON Schema error names a JSON
//! pointer in the sample, not a line of its file.

/// The 1-based line of the first tera expression or statement in `source` that uses `name`
/// (a variable such as `deposited_at` or `user.name`, a filter `date` after `|`, a function
/// `get_env` before `(`), outside string literals. `None` when no tag uses it.
pub(crate) fn line_of_name(source: &str, name: &str) -> Option<usize> {
    let root = name.split(['.', '[']).next().unwrap_or(name);
    // The full path first (`user.name` rather than some other use of `user`), then the root.
    for wanted in [name, root] {
        if wanted.is_empty() {
            continue;
        }
        let mut offset = 0;
        let mut rest = source;
        while let Some((start, end)) = next_tag(rest) {
            let tag = blank_strings(&rest[start..end]);
            if contains_word(&tag, wanted) {
                return Some(line_at(source, offset + start));
            }
            offset += end;
            rest = &rest[end..];
        }
    }
    None
}

/// The 1-based line of a byte offset.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// The next `{{ … }}` or `{% … %}` in `text`, as a byte range (comments are skipped).
fn next_tag(text: &str) -> Option<(usize, usize)> {
    let mut search = 0;
    loop {
        let start = text[search..].find('{').map(|i| i + search)?;
        let close = match text.as_bytes().get(start + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                search = start + 1;
                continue;
            }
        };
        let end = text[start + 2..].find(close).map_or(text.len(), |i| start + 2 + i + 2);
        if close == "#}" {
            search = end;
            continue;
        }
        return Some((start, end));
    }
}

/// The tag with the contents of its string literals replaced by spaces, so that a variable name
/// in a string (`"amount"`) is not taken for a use of it.
fn blank_strings(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    let mut quote: Option<char> = None;
    for c in tag.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => out.push(' '),
            None => {
                if matches!(c, '"' | '\'' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// `word` appears in `text` as a whole name: not inside a longer name, and not as an attribute
/// of something else (`.word`).
fn contains_word(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(|c| is_name(c) || c == '.') && !after.is_some_and(is_name)
    })
}

/// The 1-based line where the value at `pointer` (JSON pointer segments, unescaped) starts in
/// the JSON `text`; for an object member, the line of its key. `None` when the text is not
/// valid JSON or has no such value.
pub(crate) fn line_of_pointer(text: &str, pointer: &[String]) -> Option<usize> {
    let mut parser = JsonScanner { bytes: text.as_bytes(), at: 0 };
    parser.skip_ws();
    let offset = parser.find(pointer, parser.at)?;
    Some(line_at(text, offset))
}

/// A minimal JSON reader that only tracks where values start.
struct JsonScanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonScanner<'_> {
    fn skip_ws(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    /// Looks for `pointer` in the value starting at `self.at`; `here` is the offset to report
    /// when the pointer is empty (the key of a member, or the value itself).
    fn find(&mut self, pointer: &[String], here: usize) -> Option<usize> {
        let Some((first, rest)) = pointer.split_first() else {
            return Some(here);
        };
        match self.bytes.get(self.at)? {
            b'{' => {
                self.at += 1;
                loop {
                    self.skip_ws();
                    match self.bytes.get(self.at)? {
                        b'}' => return None,
                        b',' => {
                            self.at += 1;
                            continue;
                        }
                        _ => {}
                    }
                    let key_at = self.at;
                    let key = self.string()?;
                    self.skip_ws();
                    if self.bytes.get(self.at) != Some(&b':') {
                        return None;
                    }
                    self.at += 1;
                    self.skip_ws();
                    if key == *first {
                        return self.find(rest, key_at);
                    }
                    self.skip_value()?;
                }
            }
            b'[' => {
                let wanted: usize = first.parse().ok()?;
                self.at += 1;
                let mut index = 0;
                loop {
                    self.skip_ws();
                    match self.bytes.get(self.at)? {
                        b']' => return None,
                        b',' => {
                            self.at += 1;
                            continue;
                        }
                        _ => {}
                    }
                    if index == wanted {
                        let value_at = self.at;
                        return self.find(rest, value_at);
                    }
                    self.skip_value()?;
                    index += 1;
                }
            }
            _ => None,
        }
    }

    /// Reads a string at `self.at` (unescaping the common escapes).
    fn string(&mut self) -> Option<String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let mut i = start;
        let mut escaped = false;
        while let Some(&b) = self.bytes.get(i) {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                self.at = i + 1;
                let raw = std::str::from_utf8(&self.bytes[start..i]).ok()?;
                return serde_json::from_str(&format!("\"{raw}\"")).ok();
            }
            i += 1;
        }
        None
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.bytes.get(self.at)? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if *open == b'{' { b'}' } else { b']' };
                let mut depth = 0usize;
                while let Some(&b) = self.bytes.get(self.at) {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return (b == close).then_some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
                None
            }
            _ => {
                while self.bytes.get(self.at).is_some_and(|b| !matches!(b, b',' | b'}' | b']')) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_of_a_variable() {
        let source = "<p>{{ \"amount\" }}</p>\n{# amount #}\n<p>{{ total_amount }}</p>\n\
                      {% if x.amount %}\n{{ amount | number_format }}\n{{ user.name }}{{ user }}";
        assert_eq!(line_of_name(source, "amount"), Some(5));
        assert_eq!(line_of_name(source, "user.name"), Some(6));
        assert_eq!(line_of_name(source, "user.email"), Some(6), "falls back to the root");
        assert_eq!(line_of_name(source, "missing"), None);
        assert_eq!(line_of_name("{% for a in items %}\n{{ a }}", "items"), Some(1));
        assert_eq!(line_of_name("x\n{{ d | date(format=\"%Y\") }}", "date"), Some(2));
    }

    fn pointer(raw: &str) -> Vec<String> {
        raw.split('/').skip(1).map(str::to_owned).collect()
    }

    #[test]
    fn finds_the_line_of_a_json_pointer() {
        let text = "{\n  \"to\": {\"email\": \"a@b.example\"},\n  \"variables\": {\n    \"s\": \"}\\\"{\",\n    \"list\": [1,\n      {\"x\": 2}],\n    \"amount\": \"50,000\"\n  }\n}\n";
        assert_eq!(line_of_pointer(text, &pointer("/variables/amount")), Some(7));
        assert_eq!(line_of_pointer(text, &pointer("/variables/list/1/x")), Some(6));
        assert_eq!(line_of_pointer(text, &pointer("/variables")), Some(3));
        assert_eq!(line_of_pointer(text, &pointer("/to/email")), Some(2));
        assert_eq!(line_of_pointer(text, &[]), Some(1));
        assert_eq!(line_of_pointer(text, &pointer("/variables/nope")), None);
    }
}
