//! Rows in COPY's text format.

use std::fmt::Write as _;

use analytics_core::model::Event;

/// A batch encoded in COPY's text format (tab-separated, `\N` for NULL, backslash escapes),
/// one line per event, so any subset of the events can be sent without encoding again.
pub(super) struct CopyRows {
    text: String,
    /// Where each event's line ends in `text`.
    ends: Vec<usize>,
}

impl CopyRows {
    /// Encodes `events` of `tenant`, in the column order of `COPY_EVENTS`.
    pub(super) fn encode(tenant: &str, events: &[&Event]) -> Self {
        let mut text = String::with_capacity(events.len() * 256);
        let mut ends = Vec::with_capacity(events.len());
        for event in events {
            field(&mut text, Some(tenant));
            text.push('\t');
            field(&mut text, Some(event.id.as_str()));
            // Always UTC with microseconds, which PostgreSQL parses exactly.
            let _ = write!(text, "\t{}\t", event.timestamp.format("%Y-%m-%d %H:%M:%S%.6f+00"));
            field(&mut text, event.user_id.as_ref().map(|v| v.as_str()));
            text.push('\t');
            field(&mut text, Some(event.event_type.as_str()));
            for value in [
                event.session_id.as_ref().map(|v| v.as_str()),
                event.page.as_ref().map(|v| v.as_str()),
                event.browser.as_ref().map(|v| v.as_str()),
                event.device.as_ref().map(|v| v.as_str()),
                event.country.as_ref().map(|v| v.as_str()),
            ] {
                text.push('\t');
                field(&mut text, value);
            }
            text.push('\t');
            let properties = serde_json::to_string(&*event.properties).expect("a JSON map always serializes");
            field(&mut text, Some(&properties));
            text.push('\t');
            field(&mut text, event.experiment_id.as_ref().map(|v| v.as_str()));
            text.push('\t');
            field(&mut text, event.variant.as_ref().map(|v| v.as_str()));
            text.push('\n');
            ends.push(text.len());
        }
        Self { text, ends }
    }

    /// The lines of the events whose flag is set (all of them without copying, the usual case).
    pub(super) fn select(&self, keep: &[bool]) -> Vec<u8> {
        if keep.iter().all(|k| *k) {
            return self.text.as_bytes().to_vec();
        }
        let mut out = Vec::with_capacity(self.text.len());
        let mut start = 0;
        for (end, keep) in self.ends.iter().zip(keep) {
            if *keep {
                out.extend_from_slice(&self.text.as_bytes()[start..*end]);
            }
            start = *end;
        }
        out
    }
}

fn field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::model::{EventId, EventType, Page, TenantId};

    #[test]
    fn copy_rows_escape_and_mark_nulls() {
        let mut e = Event::new(
            TenantId::parse("t").unwrap(),
            EventId::parse("a").unwrap(),
            EventType::parse("view").unwrap(),
            "2024-03-01T10:20:30.123456Z".parse().unwrap(),
        );
        e.page = Some(Page::parse("/a\\b").unwrap());
        let mut other = e.clone();
        other.id = EventId::parse("b").unwrap();
        let rows = CopyRows::encode("t", &[&e, &other]);
        let text = String::from_utf8(rows.select(&[true, false])).unwrap();
        let columns: Vec<&str> = text.trim_end_matches('\n').split('\t').collect();
        assert_eq!(columns.len(), 13);
        assert_eq!(columns[..3], ["t", "a", "2024-03-01 10:20:30.123456+00"]);
        assert_eq!(columns[3], "\\N");
        assert_eq!(columns[6], "/a\\\\b");
        assert_eq!(columns[10], "{}");
        assert_eq!(rows.select(&[true, true]).len(), 2 * text.len());
    }
}
