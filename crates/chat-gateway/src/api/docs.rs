//! `/openapi.json` (the contract as OpenAPI 3.1) and `/docs` (a small
//! self-contained page rendering it, so it works without any CDN).

use std::sync::Arc;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// The OpenAPI document, kept beside the crate and checked by tests against
/// the routes the router serves.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn docs() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chat-gateway API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em}.op{margin:.6em 0;padding:.5em .8em;border:1px solid #e3e3e3;border-radius:6px}
.m{display:inline-block;width:4.5em;font-weight:700}.get{color:#0a6}.post{color:#06c}.delete{color:#c33}
code{background:#f4f4f4;padding:0 .3em;border-radius:3px}small{color:#666}</style></head>
<body><h1>chat-gateway API</h1><p id="desc"></p><div id="ops"></div>
<p><small>Machine-readable: <a href="/openapi.json">/openapi.json</a></small></p>
<script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
  document.getElementById('desc').textContent=doc.info.description;
  const ops=document.getElementById('ops');
  for(const [path,item] of Object.entries(doc.paths)){
    for(const [method,op] of Object.entries(item)){
      const d=document.createElement('div');d.className='op';
      const params=(op.parameters||[]).filter(p=>p.in==='query').map(p=>'<code>'+p.name+'</code>').join(' ');
      const codes=Object.keys(op.responses||{}).join(', ');
      d.innerHTML='<span class="m '+method+'">'+method.toUpperCase()+'</span><code>'+path+'</code> — '+(op.summary||'')+
        (params?'<br><small>query: '+params+'</small>':'')+'<br><small>responses: '+codes+'</small>';
      ops.appendChild(d);
    }
  }
});
</script></body></html>"#;
