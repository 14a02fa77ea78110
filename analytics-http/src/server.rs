//! The `analytics-server` binary's logic (placeholder; filled below).
