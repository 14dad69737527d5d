//! Object storage for the lake: `s3://bucket/prefix` (and `s3a://`) through object_store's S3 client.
//!
//! Settings come from the usual AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP` …) with `[lake.storage]` over it
//! (object_store's keys: `aws_endpoint`, `aws_region`, `aws_allow_http`, `aws_access_key_id` …). Delta
//! commits are put-if-absent (S3's conditional `If-None-Match`), so two writers cannot both take one log
//! version: the loser retries at the next one, as on a local disk.

use std::sync::{Arc, Once};

use deltalake_core::logstore::object_store::aws::{
    AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut,
};
use deltalake_core::logstore::object_store::{ObjectStoreScheme, path::Path};
use deltalake_core::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use deltalake_core::{DeltaResult, DeltaTableError};
use url::Url;

/// The URL schemes served here.
pub const SCHEMES: [&str; 2] = ["s3", "s3a"];

struct S3;

impl ObjectStoreFactory for S3 {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let mut builder = AmazonS3Builder::from_env()
            .with_url(url.as_str())
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        for (key, value) in &config.raw {
            let parsed = s3_key(key).map_err(DeltaTableError::Generic)?;
            builder = builder.with_config(parsed, value.clone());
        }
        let (_, path) = ObjectStoreScheme::parse(url)
            .map_err(|e| DeltaTableError::Generic(format!("{url}: {e}")))?;
        Ok((Arc::new(builder.build()?), path))
    }
}

impl LogStoreFactory for S3 {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// The S3 setting `lake.storage.{key}` names, or why it names none.
pub fn s3_key(key: &str) -> Result<AmazonS3ConfigKey, String> {
    key.to_ascii_lowercase().parse().map_err(|_| {
        format!(
            "lake.storage.{key} is not an S3 setting (object_store's keys: aws_endpoint, aws_region, aws_allow_http, aws_access_key_id …)"
        )
    })
}

/// Makes `s3://` and `s3a://` table URLs known to delta-rs (once per process).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let factory = Arc::new(S3);
        for scheme in SCHEMES {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme URL");
            object_store_factories().insert(url.clone(), factory.clone());
            logstore_factories().insert(url, factory.clone());
        }
    });
}
