//! Real servers for the TLS and proxy tests: a throwaway certificate
//! authority made with the `openssl` command, nginx terminating TLS in front
//! of the simulator, and tinyproxy as an HTTP proxy. Every server listens on
//! 127.0.0.1 only, on a port probed at run time, and is killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Sim;

/// Maximum wait for nginx or tinyproxy to accept connections.
const START_LIMIT: Duration = Duration::from_secs(10);
/// Attempts to start a server when another process took the probed port first.
const START_ATTEMPTS: usize = 3;

/// Runs `openssl` with `args` in `dir` and panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (install the openssl package)");
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority created for one test, with the server
/// certificates it signed and an unrelated second authority.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Creates the CA, a certificate for `localhost` and 127.0.0.1, a
    /// certificate for `wrong.example`, and an unrelated CA. Keys are P-256,
    /// which openssl generates in milliseconds.
    pub fn create() -> TestCa {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path();
        Self::self_signed(path, "ca", "genesys-video-agent test CA");
        Self::self_signed(path, "other-ca", "unrelated test CA");
        Self::signed(path, "localhost", "DNS:localhost,IP:127.0.0.1");
        Self::signed(path, "wrong", "DNS:wrong.example");

        let mut bundle = std::fs::read(path.join("other-ca.pem")).expect("read other-ca.pem");
        bundle.extend(std::fs::read(path.join("ca.pem")).expect("read ca.pem"));
        std::fs::write(path.join("bundle.pem"), bundle).expect("write bundle.pem");
        TestCa { dir }
    }

    fn self_signed(dir: &Path, name: &str, common_name: &str) {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={common_name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    /// Issues `<name>.pem` and `<name>.key` from the test CA for `alt_names`.
    fn signed(dir: &Path, name: &str, alt_names: &str) {
        let extensions = format!(
            "subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        );
        std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("write extensions");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Returns the path of the test CA's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// Returns the path of a bundle: the unrelated CA's certificate, then the test CA's.
    pub fn bundle_file(&self) -> PathBuf {
        self.file("bundle.pem")
    }

    /// Returns the path of the unrelated CA's certificate alone.
    pub fn other_ca_file(&self) -> PathBuf {
        self.file("other-ca.pem")
    }

    /// Returns the certificate and key paths for `localhost` and 127.0.0.1.
    pub fn localhost_pair(&self) -> (PathBuf, PathBuf) {
        (self.file("localhost.pem"), self.file("localhost.key"))
    }

    /// Returns the certificate and key paths for `wrong.example` only.
    pub fn wrong_name_pair(&self) -> (PathBuf, PathBuf) {
        (self.file("wrong.pem"), self.file("wrong.key"))
    }
}

/// Returns a port that was free on 127.0.0.1 a moment ago. Another process
/// may take it before the server binds it, so callers retry on a bind error.
fn probe_free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a probe socket on 127.0.0.1")
        .port()
}

/// Extracts the `host:port` part of a simulator URL such as `ws://127.0.0.1:4000/path`.
fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// Waits until `port` accepts a connection, or returns the reason it never did.
fn wait_until_listening(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("exited with {status} before listening:\n{log}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if started.elapsed() > START_LIMIT {
            return Err(format!(
                "did not listen on port {port} within {START_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// nginx terminating TLS on two loopback ports: one in front of the
/// simulator's API (OAuth and REST), one in front of its event stream.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    pub api_port: u16,
    pub events_port: u16,
}

impl Nginx {
    /// Starts nginx with `certificate` and `key` in front of `sim`.
    pub fn start(sim: &Sim, certificate: &Path, key: &Path) -> Nginx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let api_port = probe_free_port();
            let events_port = probe_free_port();
            let config = nginx_config(dir.path(), sim, certificate, key, api_port, events_port);
            let config_path = dir.path().join("nginx.conf");
            std::fs::write(&config_path, config).expect("write nginx.conf");
            let error_log = dir.path().join("error.log");
            let mut child = Command::new(nginx_binary())
                .arg("-e")
                .arg(&error_log)
                .arg("-c")
                .arg(&config_path)
                .arg("-p")
                .arg(dir.path())
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx (install the nginx package)");
            let ready = wait_until_listening(&mut child, api_port, &error_log)
                .and_then(|()| wait_until_listening(&mut child, events_port, &error_log));
            match ready {
                Ok(()) => {
                    return Nginx {
                        child,
                        dir,
                        api_port,
                        events_port,
                    };
                }
                Err(reason) => {
                    kill(&mut child);
                    last_error = reason;
                }
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    /// Returns the OAuth and REST base URL. It names the host `localhost`, so
    /// the certificate's host name is verified.
    pub fn api_base(&self) -> String {
        format!("https://localhost:{}", self.api_port)
    }

    pub fn events_url(&self) -> String {
        format!(
            "wss://localhost:{}/api/v2/analytics/events/subscribe",
            self.events_port
        )
    }

    /// Returns the agent flags that point it at this nginx instead of the simulator.
    pub fn agent_flags(&self) -> Vec<String> {
        vec![
            "--login-base".to_owned(),
            self.api_base(),
            "--api-base".to_owned(),
            self.api_base(),
            "--events-url".to_owned(),
            self.events_url(),
        ]
    }

    /// Reads the access log, one line per request that nginx proxied.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// Builds the nginx configuration. `master_process off` keeps nginx in one
/// process, so killing the child on drop leaves no orphaned worker behind
/// and no worker switches to a user that cannot enter the temporary directory.
fn nginx_config(
    dir: &Path,
    sim: &Sim,
    certificate: &Path,
    key: &Path,
    api_port: u16,
    events_port: u16,
) -> String {
    let dir = dir.display();
    let api = authority_of(&sim.api);
    let events = authority_of(&sim.events);
    let certificate = certificate.display();
    let key = key.display();
    format!(
        r#"
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    server {{
        listen 127.0.0.1:{api_port} ssl;
        server_name localhost;
        location / {{
            proxy_pass http://{api};
        }}
    }}
    server {{
        listen 127.0.0.1:{events_port} ssl;
        server_name localhost;
        location / {{
            proxy_pass http://{events};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 120s;
        }}
    }}
}}
"#
    )
}

/// tinyproxy as an HTTP proxy on a loopback port, logging every request.
pub struct Tinyproxy {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Tinyproxy {
    /// Starts tinyproxy with the base configuration plus `extra` lines
    /// (such as `ConnectPort 1` or `BasicAuth user secret`). Without a
    /// `ConnectPort` line, CONNECT to any port is allowed.
    pub fn start(extra: &[&str]) -> Tinyproxy {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("tinyproxy.log");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = probe_free_port();
            let mut config = format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nLogFile \"{}\"\n\
                 LogLevel Info\nMaxClients 20\nTimeout 60\n",
                log.display()
            );
            for line in extra {
                config.push_str(line);
                config.push('\n');
            }
            let config_path = dir.path().join("tinyproxy.conf");
            std::fs::write(&config_path, config).expect("write tinyproxy.conf");
            let _ = std::fs::remove_file(&log);
            let mut child = Command::new("tinyproxy")
                .arg("-d")
                .arg("-c")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tinyproxy (install the tinyproxy package)");
            match wait_for_log_line(&mut child, &log, "Accepting connections") {
                Ok(()) => return Tinyproxy { child, dir, port },
                Err(reason) => {
                    kill(&mut child);
                    last_error = reason;
                }
            }
        }
        panic!("tinyproxy did not start: {last_error}");
    }

    /// Returns the proxy URL without credentials.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Reads the whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }

    /// Extracts the request lines that tinyproxy logged, such as `CONNECT 127.0.0.1:4000 HTTP/1.1`
    /// or `PUT http://127.0.0.1:4001/api/v2/... HTTP/1.1`.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| line.split_once("Request (file descriptor "))
            .filter_map(|(_, rest)| rest.split_once("): "))
            .map(|(_, request)| request.trim().to_owned())
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Waits until tinyproxy logs `needle`, or returns why it did not. tinyproxy
/// logs "Accepting connections" after it binds its port.
fn wait_for_log_line(child: &mut Child, log: &Path, needle: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before listening:\n{text}"));
        }
        if started.elapsed() > START_LIMIT {
            return Err(format!(
                "logged no {needle:?} within {START_LIMIT:?}:\n{text}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `CONNECT target` to a proxy without credentials and returns the
/// status line of its reply.
pub fn connect_status_line(proxy_port: u16, target: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy_port)).expect("connect to proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set read timeout");
    write!(
        stream,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
    )
    .expect("send CONNECT");
    let mut reply = Vec::new();
    let mut buffer = [0u8; 512];
    while !reply.windows(2).any(|pair| pair == b"\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => reply.extend_from_slice(&buffer[..read]),
        }
    }
    String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
