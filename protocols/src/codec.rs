//! The compact binary records protocols write to durable storage: little-endian
//! fixed-width numbers and length-prefixed strings. A reader answers `None` for a torn or
//! corrupt record instead of panicking.

/// Appends fields to a record.
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub fn text(&mut self, text: &str) {
        self.bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(text.as_bytes());
    }
}

/// Reads a record field by field.
pub struct Reader<'a> {
    pub bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")))
    }

    pub fn text(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("four bytes")) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    /// Whether the whole record was read (trailing bytes mean corruption).
    pub fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A counter kept in two storage slots, written alternately (`value % 2`): a write torn
/// by a crash leaves the other slot whole, holding the value before. Reads the newest
/// whole one.
pub fn read_counter(storage: &sim_core::Storage, slots: [&str; 2]) -> Option<u64> {
    slots.iter().filter_map(|key| storage.get(key)?.try_into().ok().map(u64::from_le_bytes)).max()
}

/// Writes `value` into its slot and syncs (see [`read_counter`]).
pub fn write_counter(storage: &mut sim_core::Storage, slots: [&str; 2], value: u64) {
    storage.put(slots[(value % 2) as usize], value.to_le_bytes().to_vec());
    storage.sync();
}
