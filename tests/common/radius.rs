//! A FreeRADIUS 3.2 with rlm_totp, started by a test on a random loopback port with its own
//! config directory (shared by tests/mfa.rs and tests/connector.rs), and TOTP codes from
//! `oathtool`. Needs freeradius and oathtool (scripts/test-all.sh installs them).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::text;

/// The TOTP key every MFA user of these tests has in FreeRADIUS (base32, 20 bytes).
pub const TOTP_KEY: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// The shared secret between dird and the RADIUS servers.
pub const SECRET: &str = "Radius-Test-Secret-1";

/// A FreeRADIUS started by a test: its own raddb in a temp dir, on a loopback port.
pub struct FreeRadius {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl FreeRadius {
    /// Starts on a free port: `users` get the TOTP key; `require_ma` sets the client's
    /// `require_message_authenticator`.
    pub fn start(users: &[&str]) -> FreeRadius {
        let port = free_udp_port();
        let mut f = FreeRadius {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port,
        };
        f.write_config(users);
        f.launch();
        f
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn write_config(&self, users: &[&str]) {
        let d = self.dir.path().display().to_string();
        std::fs::create_dir_all(self.dir.path().join("log")).unwrap();
        std::fs::create_dir_all(self.dir.path().join("run")).unwrap();
        // Debian's 3.2.1 signs replies only when post-auth (and Post-Auth-Type REJECT) add a
        // Message-Authenticator; the client requires one in every request.
        let conf = format!(
            r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}/log
raddbdir = {d}
radacctdir = {d}/log/radacct
name = freeradius
confdir = {d}
modconfdir = {d}
certdir = {d}
cadir = {d}
run_dir = {d}/run
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/run/radiusd.pid
max_request_time = 10
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {{
  destination = stdout
  auth = yes
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}}
thread pool {{
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 2
}}
client dird {{
  ipaddr = 127.0.0.1
  secret = {SECRET}
  require_message_authenticator = yes
  nas_type = other
}}
modules {{
  files {{
    filename = {d}/users
  }}
  totp {{
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {port}
  }}
  authorize {{
    files
    if (&control:TOTP-Secret) {{
      update request {{
        &TOTP-Password := &User-Password
      }}
      update control {{
        &Auth-Type := TOTP
      }}
    }}
  }}
  authenticate {{
    Auth-Type TOTP {{
      totp
    }}
  }}
  post-auth {{
    update reply {{
      Message-Authenticator := 0x00
    }}
    Post-Auth-Type REJECT {{
      update reply {{
        Message-Authenticator := 0x00
      }}
    }}
  }}
}}
"#,
            port = self.port
        );
        std::fs::write(self.dir.path().join("radiusd.conf"), conf).unwrap();
        let mut users_file = String::new();
        for u in users {
            users_file.push_str(&format!(
                "{u} TOTP-Secret := \"{TOTP_KEY}\"\n        Reply-Message := \"TOTP ok\"\n\n"
            ));
        }
        std::fs::write(self.dir.path().join("users"), users_file).unwrap();
    }

    pub fn launch(&mut self) {
        assert!(
            Path::new("/usr/sbin/freeradius").exists(),
            "/usr/sbin/freeradius is missing: install freeradius (scripts/test-all.sh does)"
        );
        let out = std::fs::File::create(self.dir.path().join("radiusd.out")).unwrap();
        let child = Command::new("/usr/sbin/freeradius")
            .args(["-f", "-d"])
            .arg(self.dir.path())
            .args(["-l", "stdout"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("run freeradius");
        self.child = Some(child);
        // Ready: the port is taken (without -X there is no readiness line to wait for).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if UdpSocket::bind(self.addr()).is_err() {
                break; // the port is held: freeradius listens
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("freeradius exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "freeradius did not listen within 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radiusd.out")).unwrap_or_default()
    }

    /// Stops it (by PID) and waits until the port is free.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A UDP port nobody listens on right now.
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// The current TOTP code, taken early enough in its 30 s step that it is still valid when
/// the bind reaches FreeRADIUS (rlm_totp in 3.2.1 has no look-back window).
pub fn fresh_code() -> String {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if now % 30 < 25 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = Command::new("oathtool")
        .args(["--totp", "-b", TOTP_KEY])
        .output()
        .unwrap_or_else(|e| panic!("oathtool could not be run ({e}): install oathtool"));
    assert!(out.status.success(), "oathtool: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A six-digit code that is not the current one.
pub fn wrong_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 500_000) % 1_000_000)
}
