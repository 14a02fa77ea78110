//! A summary rendered as JSON in two pieces ([`SummaryJson`]), so a server writes the cached
//! answer's body without copying it into every response.

use std::sync::Arc;

/// A summary as JSON, in the two pieces a server writes one after the other: the
/// [`head`](Self::head), the cached answer's body, shared by every response served from the same
/// answer rather than copied into each; and the [`tail`](Self::tail), this response's
/// `_metadata`. Together they are the bytes `serde_json::to_vec(&summary)` gives.
#[derive(Debug, Clone)]
pub struct SummaryJson {
    pub(super) head: SharedJson,
    pub(super) tail: Vec<u8>,
}

impl SummaryJson {
    /// The first piece: the answer's body, its closing brace left off.
    pub fn head(&self) -> &[u8] {
        self.head.as_ref()
    }

    /// The second piece: `_metadata` and the closing brace.
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// The whole length in bytes.
    pub fn len(&self) -> usize {
        self.head.len + self.tail.len()
    }

    /// Never true: a summary's JSON always has members. (For symmetry with
    /// [`len`](Self::len).)
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Both pieces, to hand to a writer without copying the head (it lives as long as any
    /// clone of it).
    pub fn into_parts(self) -> (SharedJson, Vec<u8>) {
        (self.head, self.tail)
    }

    /// The JSON in one buffer (a copy of the head).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut json = Vec::with_capacity(self.len());
        json.extend_from_slice(self.head());
        json.extend_from_slice(self.tail());
        json
    }
}

/// JSON bytes shared with a cached answer: cloning is a reference count, not a copy.
#[derive(Debug, Clone)]
pub struct SharedJson {
    pub(super) bytes: Arc<[u8]>,
    pub(super) len: usize,
}

impl AsRef<[u8]> for SharedJson {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}
