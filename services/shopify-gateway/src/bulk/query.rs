//! Bulk queries: one is started (or, after a restart, found: `start`) and polled to its end, and its result file
//! downloaded, whole or line by line as it arrives (a catalog's file can be hundreds of MB). Every bulk read (the
//! catalog export, orders) goes through the [`Exporter`], so each is recorded and resumed the same way.

use std::time::Duration;

use sqlx::PgPool;

use super::start::{BulkKind, BulkStart, StartError};
use crate::shopify::{
    budget::Lane,
    executor::{CallError, Executor, ShopCredentials},
    wire::{self, bulk::BulkExportStart},
};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("bulk operation {id} ended {status} ({error_code})")]
    BulkFailed {
        id: String,
        status: String,
        error_code: String,
    },
    #[error("Shopify refused the bulk query: {0}")]
    Refused(String),
    #[error("downloading the bulk result failed: {0}")]
    Download(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<StartError> for ExportError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Call(e) => Self::Call(e),
            StartError::Refused(m) | StartError::Prepare(m) => Self::Refused(m),
            StartError::Database(e) => Self::Database(e),
        }
    }
}

/// How often a running bulk operation is polled (Shopify suggests seconds, not milliseconds).
pub struct PollSettings {
    pub first: Duration,
    pub max: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

/// A finished bulk operation: its id and result file (None when it matched nothing).
#[derive(Debug, Clone)]
pub struct BulkDone {
    pub id: String,
    pub url: Option<String>,
}

pub struct Exporter<'a> {
    pub executor: &'a Executor,
    pub pool: &'a PgPool,
    pub download: reqwest::Client,
    pub poll: PollSettings,
}

impl Exporter<'_> {
    /// Runs one bulk query of a command to the end: starts it (or, after a restart, finds the operation started
    /// before under the same command id and stage name, even one whose id was never recorded: [`bulk_start`]) and
    /// polls it until it finishes. Other modules' bulk reads (orders) go through here too, so every bulk operation is
    /// recorded and resumed the same way.
    pub async fn run_bulk_query(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        command_id: &str,
        stage: &str,
        query: &str,
    ) -> Result<BulkDone, ExportError> {
        let start = BulkStart {
            executor: self.executor,
            pool: self.pool,
            shop,
            lane,
            command_id,
            stage,
            kind: BulkKind::Query,
            text: query,
            wait_first: self.poll.first,
            wait_max: self.poll.max,
        };
        let mut calls = 0;
        let bulk_id = start
            .run(
                || async {
                    Ok(wire::variables(&BulkExportStart {
                        query: query.to_string(),
                    }))
                },
                &mut calls,
            )
            .await?;
        let end = start.poll_to_end(&bulk_id, &mut calls).await?;
        if !end.completed() {
            return Err(ExportError::BulkFailed {
                id: bulk_id,
                status: end.status,
                error_code: end.error_code,
            });
        }
        Ok(BulkDone {
            id: bulk_id,
            url: end.url,
        })
    }

    /// Downloads a bulk result file.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, ExportError> {
        let mut response = self.open(url).await?;
        let mut body = Vec::new();
        while let Some(chunk) = next_chunk(&mut response).await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Downloads a bulk result file and hands each non-empty JSONL line to `line` as it arrives, holding only the
    /// unfinished line between chunks.
    pub async fn fetch_lines(
        &self,
        url: &str,
        mut line: impl FnMut(&[u8]),
    ) -> Result<(), ExportError> {
        let mut response = self.open(url).await?;
        let mut splitter = LineSplitter::default();
        while let Some(chunk) = next_chunk(&mut response).await? {
            splitter.push(&chunk, &mut line);
        }
        splitter.finish(&mut line);
        Ok(())
    }

    async fn open(&self, url: &str) -> Result<reqwest::Response, ExportError> {
        self.download
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ExportError::Download(e.without_url().to_string()))
    }
}

async fn next_chunk(response: &mut reqwest::Response) -> Result<Option<bytes::Bytes>, ExportError> {
    response
        .chunk()
        .await
        .map_err(|e| ExportError::Download(e.without_url().to_string()))
}

/// Cuts a byte stream into lines at `\n`; a line split across chunks is carried over until its end comes.
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, chunk: &[u8], line: &mut impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                emit(&rest[..end], line);
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                emit(&self.partial, line);
                self.partial.clear();
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    /// The last line, when the file does not end with a newline.
    fn finish(mut self, line: &mut impl FnMut(&[u8])) {
        emit(&self.partial, line);
        self.partial.clear();
    }
}

fn emit(bytes: &[u8], line: &mut impl FnMut(&[u8])) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if !bytes.is_empty() {
        line(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut lines = Vec::new();
        let mut collect = |l: &[u8]| lines.push(String::from_utf8(l.to_vec()).unwrap());
        let mut splitter = LineSplitter::default();
        for chunk in [&b"{\"a\":"[..], b"1}\n{\"b\"", b":2}\r\n\n", b"{\"c\":3}"] {
            splitter.push(chunk, &mut collect);
        }
        splitter.finish(&mut collect);
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }
}
