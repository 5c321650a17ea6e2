//! JSON with comments, as service_manager's files are written: standard JSON plus `//` line
//! comments, `/* */` block comments, and trailing commas before `}` or `]`.
//!
//! Hand-written rather than `serde_json` because that accepts no comments and keeps no
//! positions: here every key and value carries its line and column, so the service file reader
//! can report each semantic error where it is written. A missing comma between two members is
//! an error that says so (`missing comma?`), never a silent guess.
//!
//! Architecture invariant: pure, and bounded: nesting deeper than [`MAX_DEPTH`] is an error,
//! not a stack overflow. The caller bounds the text's size.

/// Objects and arrays nested deeper than this are rejected.
pub(crate) const MAX_DEPTH: usize = 64;

/// A value and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Json {
    pub(crate) value: JsonValue,
    pub(crate) at: Position,
}

/// Line and column, both 1-based; columns count characters, a tab as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum JsonValue {
    Null,
    Bool(bool),
    /// As written, valid by JSON's grammar (`-1.5e3`).
    Number(String),
    String(JsonString),
    Array(Vec<Json>),
    /// Members in file order; duplicate keys are kept (the reader reports them).
    Object(Vec<Member>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JsonString {
    pub(crate) text: String,
    /// Written with at least one escape, so the text's columns do not map one to one onto the
    /// file's (the value's column is one past the opening quote otherwise).
    pub(crate) escaped: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Member {
    pub(crate) key: String,
    pub(crate) key_at: Position,
    pub(crate) value: Json,
}

/// A syntax error: where, and what was wrong (lowercase, no trailing period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) at: Position,
    pub(crate) message: String,
}

impl JsonValue {
    /// How a value reads in "expected X, found Y": `a string "five"`, `a number 5`, `a list`.
    pub(crate) fn describe(&self) -> String {
        match self {
            JsonValue::Null => "null".to_string(),
            JsonValue::Bool(flag) => format!("a boolean {flag}"),
            JsonValue::Number(number) => format!("a number {number}"),
            JsonValue::String(string) => format!("a string {:?}", string.text),
            JsonValue::Array(_) => "a list".to_string(),
            JsonValue::Object(_) => "an object".to_string(),
        }
    }
}

/// Parses one JSON value (with comments and trailing commas) filling the whole text.
///
/// # Errors
///
/// The first syntax error, with its position: a missing comma, an unterminated string or
/// comment, a bad escape or number, a bare word, nesting deeper than [`MAX_DEPTH`], or text
/// after the value.
pub(crate) fn parse(text: &str) -> Result<Json, SyntaxError> {
    let mut parser = Parser { text, offset: 0, line: 1, column: 1, depth: 0 };
    if parser.rest().starts_with('\u{feff}') {
        parser.offset += '\u{feff}'.len_utf8();
    }
    parser.skip_trivia()?;
    if parser.peek().is_none() {
        return Err(parser.error_here("the file is empty: expected a JSON object"));
    }
    let value = parser.value()?;
    parser.skip_trivia()?;
    if parser.peek().is_some() {
        let found = parser.found();
        return Err(parser.error_here(format!("expected the end of the file after the top-level value, found {found}")));
    }
    Ok(value)
}

struct Parser<'t> {
    text: &'t str,
    /// Byte offset of the next character.
    offset: usize,
    line: usize,
    column: usize,
    /// Objects and arrays open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.offset..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn position(&self) -> Position {
        Position { line: self.line, column: self.column }
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.peek()?;
        self.offset += next.len_utf8();
        if next == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(next)
    }

    fn error_here(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError { at: self.position(), message: message.into() }
    }

    /// Whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\n' | '\r') => {
                    self.bump();
                }
                Some('/') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    fn comment(&mut self) -> Result<(), SyntaxError> {
        let start = self.position();
        self.bump();
        match self.peek() {
            Some('/') => {
                while self.peek().is_some_and(|next| next != '\n') {
                    self.bump();
                }
                Ok(())
            }
            Some('*') => {
                self.bump();
                loop {
                    if self.rest().starts_with("*/") {
                        self.bump();
                        self.bump();
                        return Ok(());
                    }
                    if self.bump().is_none() {
                        return Err(SyntaxError {
                            at: start,
                            message: "unterminated comment: `/*` without a closing `*/`".to_string(),
                        });
                    }
                }
            }
            _ => Err(SyntaxError {
                at: start,
                message: format!("expected a comment (`//` or `/*`) after `/`, found {}", self.found()),
            }),
        }
    }

    /// The token at the current position, for "found X": `"scheduling"`, `` `:` ``, `end of file`.
    fn found(&self) -> String {
        let rest = self.rest();
        let Some(first) = rest.chars().next() else { return "end of file".to_string() };
        let token = if first == '"' {
            let body = &rest[1..];
            let end = match body.find(['"', '\n']) {
                Some(end) if body[end..].starts_with('"') => end + 2,
                Some(end) => end + 1,
                None => rest.len(),
            };
            &rest[..end]
        } else if first.is_alphanumeric() || matches!(first, '-' | '+' | '_' | '.') {
            let end =
                rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '+' | '_' | '.'))).unwrap_or(rest.len());
            &rest[..end]
        } else {
            &rest[..first.len_utf8()]
        };
        let shown: String = token.chars().take(40).collect();
        let ellipsis = if shown.len() < token.len() { "…" } else { "" };
        if first == '"' {
            format!("{shown}{ellipsis}")
        } else {
            format!("`{shown}{ellipsis}`")
        }
    }

    fn value(&mut self) -> Result<Json, SyntaxError> {
        let at = self.position();
        let value = match self.peek() {
            Some('{') => self.object()?,
            Some('[') => self.array()?,
            Some('"') => JsonValue::String(self.string()?),
            Some(first) if first == '-' || first.is_ascii_digit() => self.number()?,
            Some('\'') => return Err(self.error_here("strings must be in double quotes, found `'`")),
            Some(first) if first.is_alphabetic() => self.literal()?,
            _ => {
                let found = self.found();
                return Err(self.error_here(format!("expected a value, found {found}")));
            }
        };
        Ok(Json { value, at })
    }

    /// Counts one more level of nesting, or refuses it.
    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!("objects and lists are nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<JsonValue, SyntaxError> {
        let open = self.position();
        self.enter()?;
        self.bump();
        let mut members: Vec<Member> = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some('}') => break,
                Some('"') => {}
                Some(first) if first.is_alphabetic() || first == '_' || first == '\'' => {
                    let found = self.found();
                    return Err(self.error_here(format!("keys must be strings in double quotes, found {found}")));
                }
                _ => {
                    let found = self.found();
                    let message = if self.peek().is_none() {
                        format!(
                            "expected a key or `}}`, found end of file (the `{{` at {}:{} is not closed)",
                            open.line, open.column
                        )
                    } else {
                        format!("expected a key (a string in double quotes) or `}}`, found {found}")
                    };
                    return Err(self.error_here(message));
                }
            }
            let key_at = self.position();
            let key = self.string()?.text;
            self.skip_trivia()?;
            if self.peek() != Some(':') {
                let found = self.found();
                return Err(self.error_here(format!("expected `:` after the key {key:?}, found {found}")));
            }
            self.bump();
            self.skip_trivia()?;
            let value = self.value()?;
            members.push(Member { key, key_at, value });
            self.skip_trivia()?;
            let after = members.last().map(|member| member.key.as_str()).unwrap_or_default();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => break,
                Some('"') => {
                    let found = self.found();
                    return Err(self.error_here(format!(
                        "missing comma? expected `,` or `}}` after the value of {after:?}, found {found}"
                    )));
                }
                None => {
                    return Err(self.error_here(format!(
                        "expected `,` or `}}` after the value of {after:?}, found end of file (the `{{` at {}:{} \
                         is not closed)",
                        open.line, open.column
                    )));
                }
                Some(_) => {
                    let found = self.found();
                    return Err(
                        self.error_here(format!("expected `,` or `}}` after the value of {after:?}, found {found}"))
                    );
                }
            }
        }
        self.bump();
        self.depth -= 1;
        Ok(JsonValue::Object(members))
    }

    fn array(&mut self) -> Result<JsonValue, SyntaxError> {
        let open = self.position();
        self.enter()?;
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some(']') {
                break;
            }
            if self.peek().is_none() {
                return Err(self.error_here(format!(
                    "expected a value or `]`, found end of file (the `[` at {}:{} is not closed)",
                    open.line, open.column
                )));
            }
            items.push(self.value()?);
            self.skip_trivia()?;
            let item = items.len();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => break,
                None => {
                    return Err(self.error_here(format!(
                        "expected `,` or `]` after item {item} of the list, found end of file (the `[` at {}:{} \
                         is not closed)",
                        open.line, open.column
                    )));
                }
                Some(next) => {
                    let found = self.found();
                    let starts_value = matches!(next, '"' | '{' | '[' | '-') || next.is_ascii_alphanumeric();
                    let hint = if starts_value { "missing comma? " } else { "" };
                    return Err(self.error_here(format!(
                        "{hint}expected `,` or `]` after item {item} of the list, found {found}"
                    )));
                }
            }
        }
        self.bump();
        self.depth -= 1;
        Ok(JsonValue::Array(items))
    }

    fn string(&mut self) -> Result<JsonString, SyntaxError> {
        let start = self.position();
        self.bump();
        let mut text = String::new();
        let mut escaped = false;
        loop {
            let here = self.position();
            match self.bump() {
                Some('"') => return Ok(JsonString { text, escaped }),
                Some('\\') => {
                    escaped = true;
                    text.push(self.escape(here)?);
                }
                None | Some('\n') => {
                    return Err(SyntaxError {
                        at: start,
                        message: "unterminated string: a string must end on the line it starts (write \\n for a \
                                  newline)"
                            .to_string(),
                    });
                }
                Some(control) if control < ' ' => {
                    return Err(SyntaxError {
                        at: here,
                        message: format!(
                            "control character U+{:04X} in a string; write it as an escape such as \\t or \\u{:04x}",
                            u32::from(control),
                            u32::from(control)
                        ),
                    });
                }
                Some(other) => text.push(other),
            }
        }
    }

    /// The character of the escape whose backslash was at `backslash`.
    fn escape(&mut self, backslash: Position) -> Result<char, SyntaxError> {
        let invalid = |found: String| SyntaxError {
            at: backslash,
            message: format!("invalid escape {found} (JSON knows \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)"),
        };
        match self.bump() {
            Some('"') => Ok('"'),
            Some('\\') => Ok('\\'),
            Some('/') => Ok('/'),
            Some('b') => Ok('\u{8}'),
            Some('f') => Ok('\u{c}'),
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('u') => {
                let first = self.hex4(backslash)?;
                let code = match first {
                    0xD800..=0xDBFF => {
                        let low_at = self.position();
                        if !self.rest().starts_with("\\u") {
                            return Err(SyntaxError {
                                at: backslash,
                                message: format!(
                                    "\\u{first:04x} is the first half of a surrogate pair, but no \\uXXXX follows"
                                ),
                            });
                        }
                        self.bump();
                        self.bump();
                        let second = self.hex4(low_at)?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(SyntaxError {
                                at: low_at,
                                message: format!(
                                    "\\u{second:04x} cannot follow \\u{first:04x}: a surrogate pair needs \\udc00 to \\udfff second"
                                ),
                            });
                        }
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(SyntaxError {
                            at: backslash,
                            message: format!(
                                "\\u{first:04x} is the second half of a surrogate pair, with no first half"
                            ),
                        });
                    }
                    other => other,
                };
                char::from_u32(code).ok_or_else(|| invalid(format!("\\u{code:04x}")))
            }
            Some(other) => Err(invalid(format!("`\\{other}`"))),
            None => Err(invalid("`\\` at the end of the file".to_string())),
        }
    }

    /// Four hex digits after `\u` (the escape started at `at`).
    fn hex4(&mut self, at: Position) -> Result<u32, SyntaxError> {
        let digits: String = self.rest().chars().take(4).collect();
        if digits.len() != 4 || !digits.chars().all(|digit| digit.is_ascii_hexdigit()) {
            return Err(SyntaxError {
                at,
                message: format!("invalid escape `\\u{digits}`: \\u takes exactly four hex digits"),
            });
        }
        for _ in 0..4 {
            self.bump();
        }
        u32::from_str_radix(&digits, 16).map_err(|_| SyntaxError { at, message: "invalid \\u escape".to_string() })
    }

    fn number(&mut self) -> Result<JsonValue, SyntaxError> {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | '_')))
            .unwrap_or(rest.len());
        let written = &rest[..end];
        if !is_json_number(written) {
            let looks_like_duration =
                written.starts_with(|c: char| c.is_ascii_digit()) && written.ends_with(|c: char| c.is_alphabetic());
            let hint =
                if looks_like_duration { format!(" (a duration is a string: \"{written}\")") } else { String::new() };
            return Err(self.error_here(format!("invalid number `{written}`{hint}")));
        }
        let written = written.to_string();
        for _ in 0..written.len() {
            self.bump();
        }
        Ok(JsonValue::Number(written))
    }

    fn literal(&mut self) -> Result<JsonValue, SyntaxError> {
        let rest = self.rest();
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let value = match &rest[..end] {
            "true" => JsonValue::Bool(true),
            "false" => JsonValue::Bool(false),
            "null" => JsonValue::Null,
            word => {
                let word = word.to_string();
                return Err(self.error_here(format!(
                    "expected a value, found `{word}` (strings must be in double quotes; the words are true, false \
                     and null)"
                )));
            }
        };
        for _ in 0..end {
            self.bump();
        }
        Ok(value)
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(text: &str) -> bool {
    fn digits(text: &str) -> (&str, usize) {
        let count = text.bytes().take_while(u8::is_ascii_digit).count();
        (&text[count..], count)
    }
    let rest = text.strip_prefix('-').unwrap_or(text);
    let (rest, count) = digits(rest);
    if count == 0 || (count > 1 && text.trim_start_matches('-').starts_with('0')) {
        return false;
    }
    let rest = match rest.strip_prefix('.') {
        Some(fraction) => match digits(fraction) {
            (_, 0) => return false,
            (rest, _) => rest,
        },
        None => rest,
    };
    let rest = match rest.strip_prefix(['e', 'E']) {
        Some(exponent) => match digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent)) {
            (_, 0) => return false,
            (rest, _) => rest,
        },
        None => rest,
    };
    rest.is_empty()
}
