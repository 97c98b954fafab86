//! The OpenAPI 3 document of the ingest API, generated from the route annotations and types,
//! served at `GET /api/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::answers::{ErrorBody, FormatName, IngestAnswer, IngestStatus, Unavailable};
use super::parse::Rejection;
use crate::accounting::SourceStatus;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "logstream ingest", description = "Take logs (NDJSON, JSON, text lines; Elasticsearch's bulk API) into logstream."),
    paths(super::logs::post, super::status, super::bulk::post, super::bulk::post_to_index,
        super::es_info::root, super::es_info::license),
    components(schemas(FormatName, ErrorBody, IngestAnswer, Unavailable, IngestStatus, SourceStatus, Rejection, crate::publisher::SeqStatus, crate::file::FileStatus, crate::websocket::UpstreamStatus)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
