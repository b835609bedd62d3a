//! `GET /shopify/oauth/callback` on auth's HTTP port: where Shopify sends the merchant back after the grant screen.
//! The page says in plain words what happened; the work is [`OAuthFlow::complete`]. The query (code, state, hmac) is
//! never logged.

use std::sync::Arc;

use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};

use crate::oauth_flow::{OAuthFlow, SUCCESS};

/// The path of the redirect URI (`service.oauth.redirect_uri` must point here).
pub const PATH: &str = "/shopify/oauth/callback";

pub fn router(flow: Arc<OAuthFlow>) -> axum::Router {
    axum::Router::new()
        .route(PATH, get(callback))
        .with_state(flow)
}

async fn callback(
    State(flow): State<Arc<OAuthFlow>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return page(
            StatusCode::BAD_REQUEST,
            "This link is malformed: start the connection again from Shopbridge.",
        );
    };
    match flow.complete(&params).await {
        Ok(_) => page(StatusCode::OK, SUCCESS),
        Err(refusal) => page(
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
            &refusal.message,
        ),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A small self-contained page; not cached, and the URL (which carries the code) is not sent on as a referrer.
fn page(status: StatusCode, message: &str) -> Response {
    let title = if status.is_success() {
        "Shopify channel connected"
    } else {
        "Shopify connection not completed"
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<p>{}</p></body></html>\n",
        escape(message)
    );
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_escaped_into_the_page() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
