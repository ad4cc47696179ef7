//! Files dsim writes: atomically (a temporary file, then a rename), and trace sinks.

use std::cell::RefCell;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;
use sim_core::{TraceEvent, TraceSink};

fn temp_path(path: &Path) -> PathBuf {
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
        format!("cannot write {}: {e}", path.display())
    })
}

/// A trace file being written: JSON lines into a temporary file, renamed into place by
/// [`JsonLinesTrace::finish`].
#[derive(Clone)]
pub struct JsonLinesTrace {
    inner: Rc<RefCell<TraceFile>>,
}

struct TraceFile {
    writer: Option<BufWriter<std::fs::File>>,
    temp: PathBuf,
    path: PathBuf,
    error: Option<String>,
    lines: u64,
}

impl JsonLinesTrace {
    pub fn create(path: &Path) -> Result<Self, String> {
        let temp = temp_path(path);
        let file = std::fs::File::create(&temp).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let inner =
            TraceFile { writer: Some(BufWriter::new(file)), temp, path: path.to_owned(), error: None, lines: 0 };
        Ok(JsonLinesTrace { inner: Rc::new(RefCell::new(inner)) })
    }

    /// Flushes and moves the file into place; returns the number of events written.
    pub fn finish(&self) -> Result<u64, String> {
        let mut inner = self.inner.borrow_mut();
        let writer = inner.writer.take();
        let result = match (inner.error.take(), writer) {
            (Some(error), _) => Err(error),
            (None, Some(writer)) => writer
                .into_inner()
                .map_err(|e| e.to_string())
                .and_then(|file| file.sync_all().map_err(|e| e.to_string()))
                .and_then(|()| std::fs::rename(&inner.temp, &inner.path).map_err(|e| e.to_string())),
            (None, None) => Err("the trace was already finished".into()),
        };
        if let Err(e) = &result {
            let _ = std::fs::remove_file(&inner.temp);
            return Err(format!("cannot write {}: {e}", inner.path.display()));
        }
        Ok(inner.lines)
    }
}

impl<M: Serialize, O: Serialize> TraceSink<M, O> for JsonLinesTrace {
    fn record(&mut self, event: &TraceEvent<'_, M, O>) {
        let mut inner = self.inner.borrow_mut();
        if inner.error.is_some() {
            return;
        }
        let Some(writer) = inner.writer.as_mut() else {
            return;
        };
        let written = serde_json::to_writer(&mut *writer, event)
            .map_err(|e| e.to_string())
            .and_then(|()| writer.write_all(b"\n").map_err(|e| e.to_string()));
        match written {
            Ok(()) => inner.lines += 1,
            Err(e) => inner.error = Some(e),
        }
    }
}
