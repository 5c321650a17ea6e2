//! Finds the line and column of a key path (`programs.web.stopsignal`, `services[2].command`)
//! in the YAML text, for error messages.
//!
//! `serde_yaml`'s `Value` keeps no positions, so this re-reads the text for ordinary block-style
//! YAML: it walks the lines tracking indentation, finds `programs:`, then `web:` inside it, and
//! so on. It answers `None` rather than guess when the layout is something else (flow style,
//! merge keys, multi-line keys); a missing position only makes a message less precise.

use std::fmt;

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Renders `programs.web.cmd[1]`.
pub(crate) struct DisplayPath<'a>(pub(crate) &'a [Segment]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Which end of `key: value` an error points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Key,
    Value,
}

/// A line that holds content, or the part of a `- item` line after the dash.
#[derive(Clone, Copy)]
struct Line<'a> {
    /// 1-based.
    number: usize,
    raw: &'a str,
    /// Byte offset of the content; also its indentation, as only spaces and dashes precede it.
    start: usize,
}

impl<'a> Line<'a> {
    fn content(&self) -> &'a str {
        self.raw[self.start..].trim_end()
    }

    fn position(&self, byte: usize) -> (usize, usize) {
        (self.number, self.raw[..byte].chars().count() + 1)
    }
}

/// A key or list item found in the text.
struct Found<'a> {
    key: (usize, usize),
    /// Position and text of a value on the same line as its key.
    inline: Option<((usize, usize), &'a str)>,
    /// The lines of its block value.
    children: Vec<Line<'a>>,
}

/// Line and column (both 1-based) of the key at `path` or of its value.
pub(crate) fn locate(text: &str, path: &[Segment], target: Target) -> Option<(usize, usize)> {
    let root = lines(text);
    if path.is_empty() {
        return root.first().map(|line| line.position(line.start));
    }
    let found = match walk(root, path) {
        Ok(found) => found,
        // The parent's value sits on its own line, in flow style: point there.
        Err(parent) => return parent.and_then(|parent| parent.inline).map(|(position, _)| position),
    };
    match target {
        Target::Key => Some(found.key),
        Target::Value => found
            .inline
            .map(|(position, _)| position)
            .or_else(|| found.children.first().map(|line| line.position(line.start)))
            .or(Some(found.key)),
    }
}

/// The source text of a value written on its key's line, without quotes or a trailing comment.
pub(crate) fn inline_value(text: &str, path: &[Segment]) -> Option<String> {
    let (_, value) = walk(lines(text), path).ok()?.inline?;
    let value = value.split(" #").next().unwrap_or(value).trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|rest| rest.strip_suffix('\'')));
    Some(unquoted.unwrap_or(value).to_string())
}

/// Line and column of the first character of the string value at `path`, when it is written
/// on its key's line (or list item's) exactly as `value` reads: plain, or quoted without escapes.
/// Then the value's character `n` (0-based) is at that column plus `n`.
pub(crate) fn scalar_start(text: &str, path: &[Segment], value: &str) -> Option<(usize, usize)> {
    let ((line, column), written) = walk(lines(text), path).ok()?.inline?;
    let (quote_width, content) = match written.chars().next()? {
        quote @ ('"' | '\'') => {
            let inner = &written[1..];
            let close = inner.find(quote)?;
            let content = &inner[..close];
            // `\` escapes in double quotes, `''` in single quotes: columns would not map.
            let escaped = if quote == '"' { content.contains('\\') } else { inner[close + 1..].starts_with(quote) };
            (1, (!escaped).then_some(content)?)
        }
        _ => (0, written.split(" #").next().unwrap_or(written).trim_end()),
    };
    (content == value).then_some((line, column + quote_width))
}

/// Follows `path` down from the root; on failure returns the deepest ancestor found.
fn walk<'a>(mut scope: Vec<Line<'a>>, path: &[Segment]) -> Result<Found<'a>, Option<Found<'a>>> {
    let mut found: Option<Found<'a>> = None;
    for segment in path {
        let next = match segment {
            Segment::Key(key) => find_key(&scope, key),
            Segment::Index(index) => find_item(&scope, *index),
        };
        let Some(next) = next else { return Err(found) };
        scope = next.children.clone();
        found = Some(next);
    }
    found.ok_or(None)
}

fn lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(index, raw)| {
            let start = raw.len() - raw.trim_start_matches(' ').len();
            let content = raw[start..].trim_end();
            let marker = start == 0 && (content.starts_with("---") || content == "..." || content.starts_with('%'));
            (!content.is_empty() && !content.starts_with('#') && !marker).then_some(Line {
                number: index + 1,
                raw,
                start,
            })
        })
        .collect()
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ") || content.starts_with("-\t")
}

fn find_key<'a>(scope: &[Line<'a>], key: &str) -> Option<Found<'a>> {
    let indent = scope.first()?.start;
    let (index, line, after) = scope.iter().enumerate().find_map(|(index, line)| {
        (line.start == indent).then(|| key_end(line.content(), key)).flatten().map(|after| (index, line, after))
    })?;
    let value_start = line.start + after;
    let rest = &line.raw[value_start..];
    let value = rest.trim_start();
    let inline = (!value.is_empty() && !value.starts_with('#'))
        .then(|| (line.position(value_start + rest.len() - value.len()), value.trim_end()));
    let children = scope[index + 1..]
        .iter()
        // A block list may sit at its key's indentation: `services:` then `- name: x`.
        .take_while(|child| {
            child.start > indent || (child.start == indent && inline.is_none() && is_item(child.content()))
        })
        .copied()
        .collect();
    Some(Found { key: line.position(line.start), inline, children })
}

/// Byte offset just past the `:` when `content` starts with `key:` (plain or quoted).
fn key_end(content: &str, key: &str) -> Option<usize> {
    [key.to_string(), format!("\"{key}\""), format!("'{key}'")].iter().find_map(|spelling| {
        let rest = content.strip_prefix(spelling.as_str())?.trim_start_matches(' ');
        let after = rest.strip_prefix(':')?;
        (after.is_empty() || after.starts_with([' ', '\t'])).then(|| content.len() - after.len())
    })
}

fn find_item<'a>(scope: &[Line<'a>], wanted: usize) -> Option<Found<'a>> {
    let indent = scope.first()?.start;
    let (index, line) =
        scope.iter().enumerate().filter(|(_, line)| line.start == indent && is_item(line.content())).nth(wanted)?;
    let after_dash = &line.raw[line.start + 1..];
    let item = after_dash.trim_start();
    let mut children = Vec::new();
    let mut inline = None;
    if !item.trim_end().is_empty() && !item.starts_with('#') {
        let virtual_line =
            Line { number: line.number, raw: line.raw, start: line.start + 1 + after_dash.len() - item.len() };
        inline = Some((virtual_line.position(virtual_line.start), virtual_line.content()));
        children.push(virtual_line);
    }
    children.extend(scope[index + 1..].iter().take_while(|child| child.start > indent).copied());
    Some(Found { key: line.position(line.start), inline, children })
}
