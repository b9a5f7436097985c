//! Kerberos forwarding for connector mode (issue 12): the `[kdc]` listeners relay AS, TGS
//! and kpasswd messages, UDP and TCP, to the upstream AD KDCs (failover in configured order),
//! so one endpoint serves LDAP and Kerberos while dird holds no keys. Messages are relayed
//! byte for byte: the upstream KDC decides everything (pre-authentication, PAC, policy).
//! May import: std, tokio. Invariants: every upstream wait is bounded by `timeout`; requests
//! in flight per listener are capped (beyond it UDP datagrams are dropped, TCP connections
//! closed); a UDP request is answered only with what an upstream sent back to it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Settings of the forwarder.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// KDC listen addresses (UDP and TCP)
    pub listen: Vec<SocketAddr>,
    /// kpasswd listen addresses (UDP and TCP)
    pub kpasswd_listen: Vec<SocketAddr>,
    /// upstream KDCs, `host:port`, in order
    pub kdcs: Vec<String>,
    /// upstream kpasswd servers, `host:port`, in order
    pub kpasswds: Vec<String>,
    /// per-upstream attempt timeout (UDP reply, TCP connect) and TCP session bound (x4)
    pub timeout: Duration,
    /// largest relayed UDP datagram
    pub max_message: usize,
    /// requests (UDP) or connections (TCP) in flight per listener
    pub max_in_flight: usize,
}

enum Listener {
    Udp(UdpSocket, Arc<Vec<String>>),
    Tcp(TcpListener, Arc<Vec<String>>),
}

/// A bound Kerberos forwarder.
pub struct KdcProxy {
    config: ProxyConfig,
    listeners: Vec<Listener>,
    kdc_addrs: Vec<SocketAddr>,
    kpasswd_addrs: Vec<SocketAddr>,
}

impl KdcProxy {
    /// Binds every listen address for UDP and TCP.
    pub async fn bind(config: ProxyConfig) -> io::Result<KdcProxy> {
        let mut listeners = Vec::new();
        let (mut kdc_addrs, mut kpasswd_addrs) = (Vec::new(), Vec::new());
        let kdcs = Arc::new(config.kdcs.clone());
        let kpasswds = Arc::new(config.kpasswds.clone());
        for (addrs, upstream, bound) in [
            (&config.listen, &kdcs, &mut kdc_addrs),
            (&config.kpasswd_listen, &kpasswds, &mut kpasswd_addrs),
        ] {
            for &addr in addrs {
                let (udp, tcp, local) = super::bind_pair(addr).await?;
                listeners.push(Listener::Udp(udp, upstream.clone()));
                listeners.push(Listener::Tcp(tcp, upstream.clone()));
                bound.push(local);
            }
        }
        Ok(KdcProxy {
            config,
            listeners,
            kdc_addrs,
            kpasswd_addrs,
        })
    }

    /// The bound KDC addresses.
    pub fn kdc_addrs(&self) -> &[SocketAddr] {
        &self.kdc_addrs
    }

    /// The bound kpasswd addresses.
    pub fn kpasswd_addrs(&self) -> &[SocketAddr] {
        &self.kpasswd_addrs
    }

    /// Relays until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let mut loops = JoinSet::new();
        let config = Arc::new(self.config);
        for l in self.listeners {
            match l {
                Listener::Udp(s, up) => loops.spawn(udp_loop(config.clone(), Arc::new(s), up)),
                Listener::Tcp(t, up) => loops.spawn(tcp_loop(config.clone(), t, up)),
            };
        }
        tokio::pin!(shutdown);
        let result = tokio::select! {
            () = &mut shutdown => Ok(()),
            Some(ended) = loops.join_next() => match ended {
                Ok(Err(e)) => Err(e),
                _ => Ok(()),
            },
        };
        loops.abort_all();
        result
    }
}

async fn udp_loop(
    config: Arc<ProxyConfig>,
    socket: Arc<UdpSocket>,
    upstream: Arc<Vec<String>>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut buf = vec![0u8; config.max_message.max(1)];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "kdc proxy: UDP receive failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let request = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
        let (config, socket, upstream) = (config.clone(), socket.clone(), upstream.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(reply) = udp_exchange(&config, &upstream, &request).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

/// Sends a datagram to each upstream in turn until one answers.
async fn udp_exchange(
    config: &ProxyConfig,
    upstream: &[String],
    request: &[u8],
) -> Option<Vec<u8>> {
    for target in upstream {
        let Ok(mut addrs) = tokio::net::lookup_host(target.as_str()).await else {
            continue;
        };
        let Some(addr) = addrs.next() else { continue };
        let local: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let Ok(sock) = UdpSocket::bind(local).await else {
            continue;
        };
        if sock.connect(addr).await.is_err() || sock.send(request).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; config.max_message.max(1)];
        match tokio::time::timeout(config.timeout, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                buf.truncate(n);
                return Some(buf);
            }
            _ => {
                tracing::warn!(upstream = %target, "kdc proxy: no UDP answer; trying the next KDC")
            }
        }
    }
    None
}

async fn tcp_loop(
    config: Arc<ProxyConfig>,
    listener: TcpListener,
    upstream: Arc<Vec<String>>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    loop {
        let (client, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "kdc proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let (config, upstream) = (config.clone(), upstream.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut client = client;
            for target in upstream.iter() {
                let connect =
                    tokio::time::timeout(config.timeout, TcpStream::connect(target.as_str())).await;
                let Ok(Ok(mut server)) = connect else {
                    tracing::warn!(upstream = %target, "kdc proxy: TCP connect failed; trying the next KDC");
                    continue;
                };
                let _ = tokio::time::timeout(
                    config.timeout * 4,
                    tokio::io::copy_bidirectional(&mut client, &mut server),
                )
                .await;
                return;
            }
        });
    }
}
