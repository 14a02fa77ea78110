//! Rows in `COPY … (FORMAT binary)`: PostgreSQL's binary tuple format, written by hand.
//!
//! Binary rather than text because the server then parses nothing: a timestamp is eight bytes
//! instead of a string to parse, a sketch is its bytes instead of hex. sqlx exposes `COPY` only as
//! raw bytes, and the format is small (a header, then per row a field count and length-prefixed
//! fields, then a trailer), so it is encoded here rather than through another crate.

use analytics_core::model::Event;
use chrono::{DateTime, Utc};

/// The signature, flags and header-extension length that open every binary COPY stream.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that closes it.
const TRAILER: &[u8] = &(-1i16).to_be_bytes();
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// jsonb's binary format version.
const JSONB_VERSION: u8 = 1;

/// Binary COPY rows, kept separately so any subset can be sent without encoding again.
#[derive(Debug, Default)]
pub(crate) struct CopyRows {
    bytes: Vec<u8>,
    /// Where each row ends in `bytes`.
    ends: Vec<usize>,
}

/// One row being written; fields must follow the `COPY` column list.
pub(crate) struct Row<'a> {
    bytes: &'a mut Vec<u8>,
}

impl Row<'_> {
    fn field(&mut self, value: &[u8]) -> &mut Self {
        let len = i32::try_from(value.len()).expect("a field is far below 2 GiB");
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(value);
        self
    }

    /// A `text` field.
    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.field(value.as_bytes())
    }

    /// A nullable `text` field.
    pub(crate) fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// A `NULL`.
    pub(crate) fn null(&mut self) -> &mut Self {
        self.bytes.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    /// A `smallint` field.
    pub(crate) fn int2(&mut self, value: i16) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    /// A `bigint` field.
    pub(crate) fn int8(&mut self, value: i64) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    /// A `bytea` field.
    pub(crate) fn bytea(&mut self, value: &[u8]) -> &mut Self {
        self.field(value)
    }

    /// A nullable `bytea` field.
    pub(crate) fn opt_bytea(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            Some(v) => self.bytea(v),
            None => self.null(),
        }
    }

    /// A `timestamptz` field (microseconds since 2000-01-01 UTC).
    pub(crate) fn timestamptz(&mut self, value: DateTime<Utc>) -> &mut Self {
        self.int8(value.timestamp_micros() - PG_EPOCH_MICROS)
    }

    /// A `jsonb` field holding `value`, serialized straight into the stream (no string per
    /// row); its length is filled in afterwards.
    pub(crate) fn jsonb(&mut self, value: &impl serde::Serialize) -> &mut Self {
        let length_at = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        self.bytes.push(JSONB_VERSION);
        serde_json::to_writer(&mut *self.bytes, value).expect("JSON values always serialize");
        let len = i32::try_from(self.bytes.len() - length_at - 4).expect("a field is far below 2 GiB");
        self.bytes[length_at..length_at + 4].copy_from_slice(&len.to_be_bytes());
        self
    }
}

impl CopyRows {
    /// Rows with room for about `rows` rows of `row_bytes` each.
    pub(crate) fn with_capacity(rows: usize, row_bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(rows * row_bytes),
            ends: Vec::with_capacity(rows),
        }
    }

    /// Writes one row of `fields` fields with `write`.
    pub(crate) fn row(&mut self, fields: i16, write: impl FnOnce(&mut Row<'_>)) {
        self.bytes.extend_from_slice(&fields.to_be_bytes());
        write(&mut Row { bytes: &mut self.bytes });
        self.ends.push(self.bytes.len());
    }

    /// How many rows were written.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The fields of row `index` (`None` for NULL), for tests to read back what was written.
    #[cfg(test)]
    pub(crate) fn fields(&self, index: usize) -> Vec<Option<&[u8]>> {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        let row = &self.bytes[start..self.ends[index]];
        let count = i16::from_be_bytes([row[0], row[1]]);
        let mut at = 2;
        (0..count)
            .map(|_| {
                let len = i32::from_be_bytes(row[at..at + 4].try_into().expect("four bytes"));
                at += 4;
                let len = usize::try_from(len).ok()?;
                at += len;
                Some(&row[at - len..at])
            })
            .collect()
    }

    /// The whole stream: header, every row, trailer.
    pub(crate) fn stream(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER.len() + self.bytes.len() + TRAILER.len());
        out.extend_from_slice(HEADER);
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(TRAILER);
        out
    }

    /// A stream of the rows whose flag in `keep` is set.
    pub(crate) fn stream_of(&self, keep: &[bool]) -> Vec<u8> {
        if keep.iter().all(|k| *k) {
            return self.stream();
        }
        let mut out = Vec::with_capacity(HEADER.len() + self.bytes.len() + TRAILER.len());
        out.extend_from_slice(HEADER);
        let mut start = 0;
        for (end, keep) in self.ends.iter().zip(keep) {
            if *keep {
                out.extend_from_slice(&self.bytes[start..*end]);
            }
            start = *end;
        }
        out.extend_from_slice(TRAILER);
        out
    }
}

/// The `events` columns in the order [`event_rows`] writes them.
pub(crate) const EVENT_COLUMNS: &str = "tenant_id, id, ts, user_id, event_type, session_id, page, browser, device, country, properties, experiment_id, variant";

/// `events` rows for `events` of `tenant`.
pub(crate) fn event_rows(tenant: &str, events: &[&Event]) -> CopyRows {
    let mut rows = CopyRows::with_capacity(events.len(), 192);
    for event in events {
        rows.row(13, |row| {
            row.text(tenant)
                .text(event.id.as_str())
                .timestamptz(event.timestamp)
                .opt_text(event.user_id.as_ref().map(|v| v.as_str()))
                .text(event.event_type.as_str())
                .opt_text(event.session_id.as_ref().map(|v| v.as_str()))
                .opt_text(event.page.as_ref().map(|v| v.as_str()))
                .opt_text(event.browser.as_ref().map(|v| v.as_str()))
                .opt_text(event.device.as_ref().map(|v| v.as_str()))
                .opt_text(event.country.as_ref().map(|v| v.as_str()))
                .jsonb(&*event.properties)
                .opt_text(event.experiment_id.as_ref().map(|v| v.as_str()))
                .opt_text(event.variant.as_ref().map(|v| v.as_str()));
        });
    }
    rows
}

/// `event_ids` ledger rows (tenant, id) for `events` of `tenant`.
pub(crate) fn ledger_rows(tenant: &str, events: &[&Event]) -> CopyRows {
    let mut rows = CopyRows::with_capacity(events.len(), 48);
    for event in events {
        rows.row(2, |row| {
            row.text(tenant).text(event.id.as_str());
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_length_prefixed_and_subsets_keep_framing() {
        let mut rows = CopyRows::default();
        rows.row(2, |r| {
            r.text("ab").null();
        });
        rows.row(2, |r| {
            r.int2(7).timestamptz("2000-01-01T00:00:01Z".parse().unwrap());
        });
        assert_eq!(rows.len(), 2);
        let all = rows.stream();
        assert!(all.starts_with(b"PGCOPY\n\xff\r\n\0"));
        assert!(all.ends_with(&[0xff, 0xff]));
        let first = rows.stream_of(&[true, false]);
        let body = &first[HEADER.len()..first.len() - 2];
        assert_eq!(body, [0, 2, 0, 0, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff]);
        let second = rows.stream_of(&[false, true]);
        let body = &second[HEADER.len()..second.len() - 2];
        assert_eq!(
            body,
            [0, 2, 0, 0, 0, 2, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]
        );
    }

    #[test]
    fn jsonb_carries_its_version_byte() {
        let mut rows = CopyRows::default();
        rows.row(1, |r| {
            r.jsonb(&serde_json::json!({}));
        });
        let s = rows.stream();
        assert_eq!(&s[HEADER.len()..s.len() - 2], [0, 1, 0, 0, 0, 3, 1, b'{', b'}']);
    }

    #[test]
    fn a_serialized_jsonb_value_gets_its_length_filled_in() {
        let mut rows = CopyRows::default();
        rows.row(2, |r| {
            r.jsonb(&serde_json::json!({"a": [1, 2]})).null();
        });
        let s = rows.stream();
        let body = &s[HEADER.len()..s.len() - 2];
        let json = br#"{"a":[1,2]}"#;
        assert_eq!(&body[..6], [0, 2, 0, 0, 0, json.len() as u8 + 1]);
        assert_eq!(&body[6..7], [JSONB_VERSION]);
        assert_eq!(&body[7..7 + json.len()], json);
        assert_eq!(&body[7 + json.len()..], [0xff; 4], "the next field follows");
    }
}
