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
    bytes: &'a [u8],
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

/// A record kept in two storage slots, written alternately, so that a write torn by a
/// crash leaves the other slot whole with the record before it. Reading takes the newest
/// whole record (by the record's own order) and remembers its slot; the next write goes
/// to the other one.
#[derive(Clone, Debug)]
pub struct SlotPair {
    keys: [&'static str; 2],
    newest: usize,
}

impl SlotPair {
    pub const fn new(keys: [&'static str; 2]) -> SlotPair {
        SlotPair { keys, newest: 1 }
    }

    /// The newest record that `decode` reads whole, if any.
    pub fn read<T: Ord>(
        &mut self,
        storage: &sim_core::Storage,
        decode: impl Fn(&mut Reader<'_>) -> Option<T>,
    ) -> Option<T> {
        let (record, slot) = (0..2)
            .filter_map(|slot| {
                let mut reader = Reader::new(storage.get(self.keys[slot])?);
                let record = decode(&mut reader)?;
                reader.is_done().then_some((record, slot))
            })
            .max()?;
        self.newest = slot;
        Some(record)
    }

    /// Writes `record` over the older slot and syncs.
    pub fn write(&mut self, storage: &mut sim_core::Storage, record: Writer) {
        self.newest = 1 - self.newest;
        storage.put(self.keys[self.newest], record.bytes);
        storage.sync();
    }
}

/// A record of one number.
pub fn number(value: u64) -> Writer {
    let mut record = Writer::default();
    record.u64(value);
    record
}
