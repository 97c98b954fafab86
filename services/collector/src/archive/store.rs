//! Where a closed segment's objects go: an S3 bucket (each object compressed and PUT whole) or a
//! search cluster (each object a `_bulk` request into its daily index).

use logstream_core::archive::{Layout, Object};

use crate::archive::cluster::{Cluster, ClusterError, Refused};
use crate::archive::s3::{Bucket, PutError};

pub enum Store {
    S3(Bucket),
    Search(Cluster),
}

/// zstd level of the archive's objects (3: zstd's default, ~5× smaller NDJSON at hundreds of
/// MB/s).
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    S3(#[from] PutError),
    #[error(transparent)]
    Search(#[from] ClusterError),
    #[error("{0} documents not taken now (429 or 5xx per item)")]
    ItemsLeft(usize),
    #[error("cannot compress an object: {0}")]
    Compress(String),
}

impl StoreError {
    /// The `reason` label of `sink_errors_total`.
    pub fn reason(&self) -> String {
        match self {
            StoreError::S3(e) => e.reason(),
            StoreError::Search(e) => e.reason(),
            StoreError::ItemsLeft(_) => "search_items_retried".to_owned(),
            StoreError::Compress(_) => "compress".to_owned(),
        }
    }
}

impl Store {
    /// How segments are grouped for this store.
    pub fn layout(&self) -> Layout {
        match self {
            Store::S3(_) => Layout::Archive,
            Store::Search(_) => Layout::DailyIndex,
        }
    }

    /// The failure reasons of this store, their series started at zero so that the first
    /// failure shows as an increase (a counter that appears at 5 shows none).
    pub fn reasons(&self) -> &'static [&'static str] {
        match self {
            Store::S3(_) => &["s3_unreachable", "progress_store"],
            Store::Search(_) => &[
                "search_unreachable",
                "search_items_retried",
                "progress_store",
            ],
        }
    }

    /// Before the first segment: the search cluster's index template.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        match self {
            Store::S3(_) => Ok(()),
            Store::Search(cluster) => Ok(cluster.install_template().await?),
        }
    }

    /// One attempt at storing `object` (documents of topic `topic`, partition `partition`).
    /// On an error what is left to store stays in `object`; documents refused for good (by a
    /// search cluster) are appended to `refused`.
    pub async fn put(
        &self,
        object: &mut Object,
        topic: &str,
        partition: i32,
        refused: &mut Vec<Refused>,
    ) -> Result<(), StoreError> {
        match self {
            Store::S3(bucket) => {
                let ndjson = object.ndjson.clone();
                let body =
                    tokio::task::spawn_blocking(move || zstd::bulk::compress(&ndjson, ZSTD_LEVEL))
                        .await
                        .map_err(|e| StoreError::Compress(e.to_string()))?
                        .map_err(|e| StoreError::Compress(e.to_string()))?;
                Ok(bucket.put(&object.key, body).await?)
            }
            Store::Search(cluster) => {
                let id = |offset| format!("{topic}-{partition}-{offset}");
                match cluster.bulk(object, id, refused).await? {
                    0 => Ok(()),
                    left => Err(StoreError::ItemsLeft(left)),
                }
            }
        }
    }
}
