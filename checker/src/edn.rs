//! A reader for the EDN subset Jepsen histories use, with line and column in every error.
//!
//! Supported: `nil`, booleans, integers (an `N` suffix is accepted), floats (kept as
//! text), strings with escapes, characters, keywords, symbols, vectors, lists, sets,
//! maps, `;` comments, commas as whitespace, `#_` discard and tagged literals (the tag
//! is dropped). Nesting is limited so that hostile input cannot exhaust the stack.

use crate::value::Value;

/// The deepest nesting the reader accepts.
pub const DEPTH_MAX: usize = 128;

/// A syntax error at a position of the input (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct EdnError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A reader over one input text.
pub struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
    /// Line of `pos` (1-based) and the byte offset where that line starts; kept current
    /// as the reader advances, so positions cost nothing extra to compute.
    line: usize,
    line_start: usize,
    /// The last column computed: (byte offset, characters from the line start to it).
    /// Columns are counted on from there, so asking for positions as the reader advances
    /// along one long line costs linear time in all, not quadratic.
    column_mark: std::cell::Cell<(usize, usize)>,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader { text: text.as_bytes(), pos: 0, line: 1, line_start: 0, column_mark: std::cell::Cell::new((0, 0)) }
    }

    /// The current position as (line, column), column counted in characters.
    pub fn position(&self) -> (usize, usize) {
        let (mut from, mut count) = self.column_mark.get();
        if from < self.line_start || from > self.pos {
            (from, count) = (self.line_start, 0);
        }
        // Characters are the bytes that do not continue a UTF-8 sequence.
        count += self.text[from..self.pos].iter().filter(|b| (**b & 0xC0) != 0x80).count();
        self.column_mark.set((self.pos, count));
        (self.line, count + 1)
    }

    fn error(&self, message: impl Into<String>) -> EdnError {
        let (line, column) = self.position();
        EdnError { line, column, message: message.into() }
    }

    fn bump(&mut self) {
        if self.text[self.pos] == b'\n' {
            self.line += 1;
            self.line_start = self.pos + 1;
        }
        self.pos += 1;
    }

    /// Skips whitespace, commas and comments. Returns the next byte, if any.
    pub fn skip_space(&mut self) -> Option<u8> {
        while self.pos < self.text.len() {
            match self.text[self.pos] {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.bump(),
                b';' => {
                    while self.pos < self.text.len() && self.text[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                byte => return Some(byte),
            }
        }
        None
    }

    /// Whether only whitespace and comments remain.
    pub fn at_end(&mut self) -> bool {
        self.skip_space().is_none()
    }

    /// Consumes `byte` if it is next (after whitespace).
    pub fn eat(&mut self, byte: u8) -> bool {
        if self.skip_space() == Some(byte) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Reads one value.
    pub fn read(&mut self) -> Result<Value, EdnError> {
        self.read_nested(0)
    }

    fn read_nested(&mut self, depth: usize) -> Result<Value, EdnError> {
        if depth > DEPTH_MAX {
            return Err(self.error(format!("nesting deeper than {DEPTH_MAX} levels")));
        }
        let Some(byte) = self.skip_space() else {
            return Err(self.error("unexpected end of input, expected a value"));
        };
        match byte {
            b'[' => self.read_seq(b']', depth).map(Value::Vec),
            b'(' => self.read_seq(b')', depth).map(Value::Vec),
            b'{' => self.read_map(depth),
            b'"' => self.read_string().map(Value::Str),
            b'#' => self.read_dispatch(depth),
            b'\\' => self.read_char(),
            b':' => {
                self.bump();
                let token = self.token();
                if token.is_empty() {
                    return Err(self.error("a keyword needs a name after ':'"));
                }
                Ok(Value::Keyword(token.to_owned()))
            }
            b']' | b')' | b'}' => Err(self.error(format!("unexpected '{}'", byte as char))),
            _ => self.read_atom(),
        }
    }

    fn read_seq(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, EdnError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            match self.skip_space() {
                None => return Err(self.error(format!("unexpected end of input, expected '{}'", close as char))),
                Some(byte) if byte == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.read_nested(depth + 1)?),
            }
        }
    }

    fn read_map(&mut self, depth: usize) -> Result<Value, EdnError> {
        self.bump();
        let mut entries: Vec<(Value, Value)> = Vec::new();
        // Keys seen, once the map is too big to scan.
        let mut seen: Option<std::collections::BTreeSet<Value>> = None;
        loop {
            match self.skip_space() {
                None => return Err(self.error("unexpected end of input, expected '}'")),
                Some(b'}') => {
                    self.bump();
                    return Ok(Value::Map(entries));
                }
                Some(_) => {
                    let (key_pos, key_line, key_line_start) = (self.pos, self.line, self.line_start);
                    let key = self.read_nested(depth + 1)?;
                    let duplicate = match &mut seen {
                        Some(seen) => !seen.insert(key.clone()),
                        None => entries.iter().any(|(k, _)| *k == key),
                    };
                    if duplicate {
                        let column =
                            self.text[key_line_start..key_pos].iter().filter(|b| (**b & 0xC0) != 0x80).count() + 1;
                        return Err(EdnError { line: key_line, column, message: format!("duplicate map key {key}") });
                    }
                    if self.skip_space() == Some(b'}') {
                        return Err(self.error(format!("map key {key} has no value")));
                    }
                    let value = self.read_nested(depth + 1)?;
                    entries.push((key, value));
                    if seen.is_none() && entries.len() > 16 {
                        seen = Some(entries.iter().map(|(k, _)| k.clone()).collect());
                    }
                }
            }
        }
    }

    fn read_dispatch(&mut self, depth: usize) -> Result<Value, EdnError> {
        self.bump();
        match self.text.get(self.pos) {
            Some(b'{') => self.read_seq(b'}', depth).map(Value::Vec),
            Some(b'_') => {
                self.bump();
                self.read_nested(depth + 1)?;
                self.read_nested(depth)
            }
            Some(byte) if byte.is_ascii_alphabetic() => {
                self.token();
                self.read_nested(depth + 1)
            }
            _ => Err(self.error("unsupported '#' form")),
        }
    }

    fn read_string(&mut self) -> Result<String, EdnError> {
        self.bump();
        let mut out = String::new();
        let mut run_start = self.pos;
        loop {
            let Some(&byte) = self.text.get(self.pos) else {
                return Err(self.error("unexpected end of input inside a string"));
            };
            match byte {
                b'"' => {
                    out.push_str(self.slice(run_start, self.pos));
                    self.bump();
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(self.slice(run_start, self.pos));
                    self.bump();
                    let Some(&escape) = self.text.get(self.pos) else {
                        return Err(self.error("unexpected end of input inside a string"));
                    };
                    out.push(match escape {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'"' => '"',
                        b'\\' => '\\',
                        b'u' => {
                            let hex =
                                self.text.get(self.pos + 1..self.pos + 5).and_then(|h| std::str::from_utf8(h).ok());
                            let code = hex.and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32);
                            let Some(c) = code else {
                                return Err(self.error("bad \\u escape in a string"));
                            };
                            self.pos += 4;
                            c
                        }
                        other => return Err(self.error(format!("unknown escape '\\{}' in a string", other as char))),
                    });
                    self.bump();
                    run_start = self.pos;
                }
                _ => self.bump(),
            }
        }
    }

    fn slice(&self, from: usize, to: usize) -> &'a str {
        // The input is a &str and we only split at ASCII bytes, so this cannot fail.
        std::str::from_utf8(&self.text[from..to]).unwrap_or("")
    }

    fn read_char(&mut self) -> Result<Value, EdnError> {
        self.bump();
        let token = self.token();
        let c = match token {
            "newline" => '\n',
            "space" => ' ',
            "tab" => '\t',
            "return" => '\r',
            _ => {
                let mut chars = token.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => return Err(self.error(format!("unknown character literal \\{token}"))),
                }
            }
        };
        Ok(Value::Str(c.to_string()))
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(&byte) = self.text.get(self.pos) {
            if byte.is_ascii_whitespace()
                || matches!(byte, b',' | b'[' | b']' | b'(' | b')' | b'{' | b'}' | b'"' | b';')
            {
                break;
            }
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    fn read_atom(&mut self) -> Result<Value, EdnError> {
        let (line, column) = self.position();
        let token = self.token();
        if token.is_empty() {
            return Err(EdnError { line, column, message: "unexpected character".into() });
        }
        let value = match token {
            "nil" => Value::Nil,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => parse_number(token).unwrap_or_else(|| Value::Symbol(token.to_owned())),
        };
        if let Value::Symbol(s) = &value
            && s.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(EdnError { line, column, message: format!("malformed number '{s}'") });
        }
        Ok(value)
    }
}

fn parse_number(token: &str) -> Option<Value> {
    let first = token.as_bytes()[0];
    let numeric_start = first.is_ascii_digit()
        || ((first == b'-' || first == b'+') && token.len() > 1 && token.as_bytes()[1].is_ascii_digit());
    if !numeric_start {
        return None;
    }
    let integer = token.strip_suffix('N').unwrap_or(token);
    if let Ok(i) = integer.parse::<i64>() {
        return Some(Value::Int(i));
    }
    let float = token.strip_suffix('M').unwrap_or(token);
    if float.parse::<f64>().is_ok() {
        return Some(Value::Float(float.to_owned()));
    }
    None
}

/// Reads a whole text holding exactly one value.
pub fn parse(text: &str) -> Result<Value, EdnError> {
    let mut reader = Reader::new(text);
    let value = reader.read()?;
    if !reader.at_end() {
        return Err(reader.error("unexpected text after the value"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jepsen_shapes() {
        let value = parse("{:process 4, :type :invoke, :f :cas, :value [2 3] :key \"a\\nb\"} ; c").unwrap();
        assert_eq!(value.get("process"), Some(&Value::Int(4)));
        assert_eq!(value.get("type"), Some(&Value::Keyword("invoke".into())));
        assert_eq!(value.get("value"), Some(&Value::Vec(vec![Value::Int(2), Value::Int(3)])));
        assert_eq!(value.get("key"), Some(&Value::Str("a\nb".into())));
        assert_eq!(
            parse("#{:a :b}").unwrap(),
            Value::Vec(vec![Value::Keyword("a".into()), Value::Keyword("b".into())])
        );
        assert_eq!(parse("#_ 5 6").unwrap(), Value::Int(6));
        assert_eq!(parse("#inst \"2020\"").unwrap(), Value::Str("2020".into()));
        assert_eq!(parse("-12N").unwrap(), Value::Int(-12));
        assert_eq!(parse("1.5").unwrap(), Value::Float("1.5".into()));
    }

    #[test]
    fn duplicate_map_keys_are_an_error_at_the_second() {
        let err = parse("{:process 1, :type :ok,\n :f :read, :type :info}").unwrap_err();
        assert_eq!((err.line, err.column, err.message.as_str()), (2, 12, "duplicate map key :type"));
        let big: String = (0..40).map(|i| format!(":k{i} {i} ")).collect();
        let err = parse(&format!("{{{big}:k7 0}}")).unwrap_err();
        assert_eq!(err.message, "duplicate map key :k7");
        assert!(parse(&format!("{{{big}}}")).is_ok());
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse("[{:a 1}\n {:b 2").unwrap_err();
        assert_eq!((err.line, err.column), (2, 7));
        assert!(err.message.contains("end of input"), "{err}");
        let err = parse("{:a}").unwrap_err();
        assert_eq!((err.line, err.column), (1, 4));
        let err = parse("[1 2 12x]").unwrap_err();
        assert_eq!((err.line, err.column), (1, 6));
        let deep = "[".repeat(10_000);
        assert!(parse(&deep).unwrap_err().message.contains("nesting"));
    }
}
