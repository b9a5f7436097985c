//! An in-process dird KDC (127.0.0.1 port 0, in-memory principals, optionally with an OTP
//! checker) driven by the real MIT Kerberos tools from Debian's `krb5-user`; shared by
//! tests/kdc_mit.rs and tests/kdc_fast.rs. The tools must be on PATH: the tests fail (never
//! skip) if they are missing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dird::kdc::db::MemoryDb;
use dird::kdc::otp::OtpCheck;
use dird::kdc::{Kdc, KdcConfig};

use super::REALM;

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub kdc: SocketAddr,
    pub kpasswd: SocketAddr,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl Lab {
    pub fn start(db: Arc<MemoryDb>, otp: Option<Arc<dyn OtpCheck>>) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut config = KdcConfig::new(REALM);
                config.listen = vec!["127.0.0.1:0".parse().unwrap()];
                config.kpasswd_listen = vec!["127.0.0.1:0".parse().unwrap()];
                let mut kdc = Kdc::bind(config, db).await.unwrap();
                if let Some(otp) = otp {
                    kdc = kdc.with_otp(otp, Some(6));
                }
                addr_tx
                    .send((kdc.kdc_addrs()[0], kdc.kpasswd_addrs()[0]))
                    .unwrap();
                kdc.run(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let (kdc, kpasswd) = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("KDC did not bind");
        let lab = Lab {
            dir,
            kdc,
            kpasswd,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        };
        lab.write_conf("krb5.conf", "");
        lab.write_conf("krb5-tcp.conf", "udp_preference_limit = 1");
        lab
    }

    pub fn write_conf(&self, name: &str, extra: &str) {
        let conf = format!(
            "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  \
             dns_canonicalize_hostname = false\n  rdns = false\n  {extra}\n[realms]\n  {REALM} = {{\n    \
             kdc = {}\n    kpasswd_server = {}\n  }}\n[domain_realm]\n  .example.com = {REALM}\n",
            self.kdc, self.kpasswd
        );
        std::fs::write(self.dir.path().join(name), conf).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs an MIT tool with the lab's config and ccache `cc`, feeding `stdin`.
    pub fn run(&self, conf: &str, cc: &str, args: &[&str], stdin: &str) -> Output {
        let tool = args[0];
        let mut child = Command::new(tool)
            .args(&args[1..])
            .env("KRB5_CONFIG", self.path(conf))
            .env("KRB5CCNAME", format!("FILE:{}", self.path(cc).display()))
            .env("KRB5_TRACE", "/dev/stderr")
            .env_remove("KRB5_KTNAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run MIT `{tool}` ({e}): install krb5-user (apt-get install -y krb5-user)"));
        super::feed_stdin(&mut child, stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    pub fn ok(&self, conf: &str, cc: &str, args: &[&str], stdin: &str) -> String {
        let out = self.run(conf, cc, args, stdin);
        super::assert_ran_ok(&out, args, &show(&out))
    }

    pub fn fails(&self, conf: &str, cc: &str, args: &[&str], stdin: &str, expect: &str) {
        let out = self.run(conf, cc, args, stdin);
        super::assert_ran_fails(&out, args, &show(&out), expect)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn require_mit_tools() {
    for tool in ["kinit", "klist", "kvno", "kpasswd"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "MIT `{tool}` is not on PATH: install krb5-user (apt-get install -y krb5-user)"
        );
    }
}
