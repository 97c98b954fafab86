//! The OpenAPI 3 document of the public API, generated from the route annotations and types,
//! served at `GET /api/v1/openapi.json`.

use axum::Json;
use logstream_core::api::{
    BreakerState, ClusterStatus, Counters, InstanceStatus, ScenarioRequest, StartRequest,
    Unreachable,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::logs::{LogPage, StoredEvent};
use crate::routes;
use crate::routes::errors::ErrorBody;
use crate::routes::names::{AlertKindName, AlertStatusName, LevelName};
use crate::stats::{Alert, AlertPage, Totals, Window, WindowPage};

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
    info(title = "logstream gateway", description = "Control log generation and query stored logs."),
    paths(
        routes::generator::start,
        routes::generator::stop,
        routes::generator::status,
        routes::stats::all,
        routes::stats::one,
        routes::windows::list,
        routes::alerts::list,
        routes::alerts::rules,
        routes::logs::search,
        routes::tail::follow,
    ),
    components(schemas(
        LevelName, AlertKindName, AlertStatusName, ErrorBody, WindowPage, AlertPage, Totals, Window, Alert,
        LogPage, StoredEvent,
        StartRequest, ScenarioRequest, ClusterStatus, Counters, InstanceStatus, BreakerState, Unreachable
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
