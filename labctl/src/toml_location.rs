//! Where in a TOML file an error is: line, column and field, for messages that name the file,
//! the line and the field (scenario files, system definitions).

/// A parse error located in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

/// Locates a deserialization error of `text`.
pub fn locate(text: &str, err: &toml::de::Error) -> Located {
    let offset = err.span().map_or(0, |s| s.start).min(text.len());
    let (line, column) = line_column(text, offset);
    let message = err.message().trim().to_owned();
    let field = field_name(text, offset, &message);
    Located {
        line,
        column,
        field,
        message,
    }
}

/// The line of the field a validation message names (``field `a.b`: ...``), from the TOML
/// document's spans.
pub fn field_line(text: &str, message: &str) -> Option<usize> {
    let field = message.strip_prefix("field `")?.split('`').next()?;
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut span = None;
    for (i, part) in field.split('.').enumerate() {
        let (key, value) = table.get_key_value(part)?;
        span = Some(key.span());
        let last = i + 1 == field.split('.').count();
        if !last {
            let toml::de::DeValue::Table(inner) = value.get_ref() else {
                break;
            };
            table = inner;
        }
    }
    span.map(|s| line_column(text, s.start).0)
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

/// The field an error is about: the key on the error's line (`key = value`), else the name in
/// backticks in serde's message (`missing field `name``), else the enclosing table.
fn field_name(text: &str, offset: usize, message: &str) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |p| p + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |p| offset + p);
    let line = &text[line_start..line_end];
    if message.starts_with("unknown field")
        || message.starts_with("missing field")
        || !line.contains('=')
    {
        if let Some(name) = message.split('`').nth(1) {
            return name.to_owned();
        }
    }
    if let Some((key, _)) = line.split_once('=') {
        let key = key.trim().trim_matches('"');
        if !key.is_empty() {
            return key.to_owned();
        }
    }
    let table = line.trim();
    if table.starts_with('[') {
        return table.trim_matches(|c| c == '[' || c == ']').to_owned();
    }
    "(document)".to_owned()
}
