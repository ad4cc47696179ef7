//! Finds where a field path (`settings.raft.heartbeat_ms`, `nemesis.schedule[2].fault`)
//! sits in a JSON text, so that errors found after parsing still name a line and column.

/// The 1-based line and column of the value at `path` in `text` (of the key, for an
/// object member), if the text has it. `path` is dot-separated keys with `[i]` for
/// array elements.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let wanted = segments(path);
    let bytes = text.as_bytes();
    // The path to the value being read, and for each open array its next index.
    let mut stack: Vec<Frame> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut i = 0;
    let mut pending_key: Option<(String, usize)> = None;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                let end = string_end(bytes, i)?;
                let in_object = matches!(stack.last(), Some(Frame::Object { expecting_key: true }));
                if in_object {
                    let key = text[start + 1..end].to_owned();
                    pending_key = Some((key, start));
                } else if let Some(found) = value_at(&current, &wanted, start, text) {
                    return Some(found);
                }
                i = end + 1;
                continue;
            }
            b':' => {
                if let Some((key, at)) = pending_key.take() {
                    current.push(key);
                    if let Some(Frame::Object { expecting_key }) = stack.last_mut() {
                        *expecting_key = false;
                    }
                    if current == wanted {
                        return Some(position(text, at));
                    }
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expecting_key }) => {
                    *expecting_key = true;
                    current.pop();
                }
                Some(Frame::Array { index }) => {
                    *index += 1;
                    current.pop();
                    current.push(format!("[{index}]"));
                }
                None => {}
            },
            b'{' | b'[' => {
                if let Some(found) = value_at(&current, &wanted, i, text) {
                    return Some(found);
                }
                if bytes[i] == b'{' {
                    stack.push(Frame::Object { expecting_key: true });
                } else {
                    stack.push(Frame::Array { index: 0 });
                    current.push("[0]".to_owned());
                }
            }
            b'}' | b']' => {
                let frame = stack.pop()?;
                let nonempty = match frame {
                    Frame::Object { expecting_key } => !expecting_key,
                    Frame::Array { .. } => true,
                };
                if nonempty {
                    current.pop();
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                if let Some(found) = value_at(&current, &wanted, i, text) {
                    return Some(found);
                }
                while i + 1 < bytes.len() && !b",}] \t\r\n".contains(&bytes[i + 1]) {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    None
}

enum Frame {
    Object { expecting_key: bool },
    Array { index: usize },
}

/// A value starts at `at` (inside an array its path is the element's): its position if
/// it is the one wanted.
fn value_at(current: &[String], wanted: &[String], at: usize, text: &str) -> Option<(usize, usize)> {
    (current == wanted).then(|| position(text, at))
}

fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        match part.find('[') {
            Some(at) => {
                if at > 0 {
                    out.push(part[..at].to_owned());
                }
                let mut rest = &part[at..];
                while let Some(end) = rest.find(']') {
                    out.push(rest[..=end].to_owned());
                    rest = &rest[end + 1..];
                }
            }
            None => out.push(part.to_owned()),
        }
    }
    out
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

/// Turns a (line, column) inside the substring at `offset` of `text` into one of `text`.
pub fn shift(text: &str, offset: usize, line: usize, column: usize) -> (usize, usize) {
    let (base_line, base_column) = position(text, offset);
    if line <= 1 { (base_line, base_column + column.saturating_sub(1)) } else { (base_line + line - 1, column) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"a\": 1,\n  \"b\": { \"c\": [10, {\"d\": true}], \"e\": \"x\" }\n}";

    #[test]
    fn finds_keys_and_elements() {
        assert_eq!(locate(TEXT, "a"), Some((2, 3)));
        assert_eq!(locate(TEXT, "b.e"), Some((3, 34)));
        assert_eq!(locate(TEXT, "b.c[0]"), Some((3, 16)));
        assert_eq!(locate(TEXT, "b.c[1].d"), Some((3, 21)));
        assert_eq!(locate(TEXT, "b.z"), None);
    }

    #[test]
    fn shifts_positions_of_a_substring() {
        let offset = TEXT.find("{ \"c\"").unwrap();
        assert_eq!(shift(TEXT, offset, 1, 3), (3, 10));
    }
}
