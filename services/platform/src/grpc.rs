//! gRPC bootstrap: every service's server has health (grpc.health.v1), reflection (v1 and v1alpha: the grpcurl
//! available here only speaks v1alpha), a span per call continuing the caller's trace, and the authentication hook.

use std::sync::Arc;

use tonic::{Request, Status, metadata::MetadataMap, service::Routes, transport::Server};

use crate::error::ApiError;

/// Who is calling: filled by the authenticator and read by handlers (`request.extensions().get::<Principal>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!(
                "this call needs the `{scope}` scope"
            )))
        }
    }
}

/// Verifies the caller's credentials. The auth service provides the real implementation (signed tokens verified with
/// auth's public keys); until a service installs one, [`DenyAll`] refuses every domain call.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status>;
}

/// Refuses everything: the safe default before an authenticator is configured.
pub struct DenyAll;

impl Authenticator for DenyAll {
    fn authenticate(&self, _: &MetadataMap) -> Result<Principal, Status> {
        Err(Status::unauthenticated(
            "no authenticator is configured for this service",
        ))
    }
}

/// A tonic interceptor that authenticates every call and stores the [`Principal`] in the request extensions.
/// Wrap each domain service with it: `FooServer::with_interceptor(svc, grpc::auth_interceptor(auth))`.
pub fn auth_interceptor(
    authenticator: Arc<dyn Authenticator>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let principal = authenticator.authenticate(request.metadata())?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// The principal of a call that went through [`auth_interceptor`].
pub fn principal<T>(request: &Request<T>) -> Result<&Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))
}

/// Health and reflection services plus the service's own routes.
pub struct GrpcParts {
    pub routes: Routes,
    pub health: tonic_health::server::HealthReporter,
}

impl GrpcParts {
    pub fn new() -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(shopbridge_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("the descriptor sets are generated at build time");
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(shopbridge_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("the descriptor sets are generated at build time");
        let routes = Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        Self { routes, health }
    }

    /// Adds one of the service's gRPC services, plain or wrapped with [`auth_interceptor`].
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tonic::codegen::Service<
                tonic::codegen::http::Request<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(service);
        self
    }
}

impl Default for GrpcParts {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `routes` on `listener` until `shutdown` completes; in-flight calls finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    Server::builder()
        .trace_fn(|request| {
            let span = tracing::info_span!("grpc", path = %request.uri().path());
            crate::telemetry::set_remote_parent(&span, |key| {
                request
                    .headers()
                    .get(key)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
            span
        })
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Adds the current trace context to an outgoing call's metadata.
pub fn inject_trace<T>(request: &mut Request<T>) {
    let metadata = request.metadata_mut();
    crate::telemetry::inject_current(|key, value| {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            metadata.insert(key, value);
        }
    });
}
