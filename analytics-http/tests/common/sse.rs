//! Reading a live-summary stream (Server-Sent Events) as a browser's `EventSource` does.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

/// Reads the `data:` payloads of unnamed messages (summaries) from an SSE byte stream.
pub struct Events<S> {
    bytes: S,
    buffer: String,
}

impl<S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin> Events<S> {
    /// The next summary: `None` when the stream ended; panics after 30 s (a hang guard).
    pub async fn next_summary(&mut self) -> Option<Value> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    // A summary is an unnamed message (what `EventSource.onmessage` receives).
                    let named = block.lines().any(|l| l.starts_with("event:"));
                    if !named && block.lines().any(|l| l.starts_with("data:")) {
                        let data: String = block
                            .lines()
                            .filter_map(|l| l.strip_prefix("data:"))
                            .map(str::trim_start)
                            .collect();
                        return Some(serde_json::from_str(&data).unwrap());
                    }
                    continue;
                }
                let chunk = self.bytes.next().await?.ok()?;
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        // A hang guard, not a timing assertion.
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("no SSE event within 30 s")
    }
}

impl Events<std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>> {
    /// Reads `response`'s body as a stream.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            bytes: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }
}
