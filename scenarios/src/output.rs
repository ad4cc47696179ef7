//! Files dsim writes: atomically (a temporary file, then a rename).

use std::io::Write;
use std::path::{Path, PathBuf};

/// How every write error starts (the CLI exits with its own code for them).
pub const CANNOT_WRITE: &str = "cannot write";

/// The temporary file a write to `path` goes through.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` so that readers see the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let temp = temp_path(path);
    let result = std::fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("{CANNOT_WRITE} {}: {e}", path.display())
    })
}

/// Writes `path` through `write` so that readers see the old file or the whole new one.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), String> {
    let temp = temp_path(path);
    let result = std::fs::File::create(&temp)
        .and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            write(&mut out)?;
            out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("{CANNOT_WRITE} {}: {e}", path.display())
    })
}

/// Reads a text file; invalid UTF-8 is reported as `FILE:LINE:COLUMN` of the first bad
/// byte, with its byte offset.
pub fn read_text(path: &Path) -> Result<String, String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |nl| nl + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        format!("{name}:{line}:{column}: not UTF-8 text (invalid byte at offset {offset})")
    })
}
