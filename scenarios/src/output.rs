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

/// Removes temporary files of earlier writes to `path` whose process is gone (killed
/// before it could rename or clean up). Where processes cannot be looked up (no
/// `/proc`), nothing is removed.
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` so that readers see the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    remove_stale_temps(path);
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
    remove_stale_temps(path);
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

/// A progress bar for long work, on a terminal only (hidden when stderr is piped).
pub fn progress_bar(total: u64, unit: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let template = format!("{{bar:30}} {{pos}}/{{len}} {unit}  ETA {{eta}}");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        // No process has this id (it is above Linux's largest).
        let stale = dir.path().join(".out.json.tmp-4294967295");
        let live = dir.path().join(format!(".out.json.tmp-{}", std::process::id()));
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(&live, b"mine").unwrap();
        write_atomic(&path, b"whole").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert!(!stale.exists() || !Path::new("/proc/self").exists());
    }
}
