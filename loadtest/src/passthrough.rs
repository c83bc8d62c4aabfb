//! A bare Pingora reverse proxy: the floor any Pingora-based gateway stands on. It forwards
//! every request to one upstream over pooled keep-alive connections and does nothing else (no
//! routing, identity, headers, metrics or log), so `compare.sh` can tell what Warden adds from
//! what Pingora itself costs.

use async_trait::async_trait;
use pingora::modules::http::HttpModules;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::proxy::http_proxy_service;
use pingora::server::configuration::Opt;
use pingora::server::{RunArgs, Server};
use std::net::SocketAddr;

struct Passthrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    // As Warden: no (disabled) compression module built and run for every request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// Serves until the process is signalled; Pingora exits the process itself.
pub fn run(listen: SocketAddr, upstream: SocketAddr, threads: usize) {
    let conf = warden::server::pingora_conf(&warden::conf::types::ServerSettings {
        threads: Some(threads),
        // Warden ends its grace period once requests in flight are done; without that
        // watcher Pingora would sleep all of it on every stop between compare rounds.
        grace_period: warden_plugins::conf::Duration::from_secs(1),
        ..Default::default()
    });
    let mut server = Server::new_with_opt_and_conf(Some(Opt::default()), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Passthrough { upstream });
    proxy.add_tcp(&listen.to_string());
    server.add_service(proxy);
    server.run(RunArgs::default());
}
