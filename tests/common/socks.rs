//! A real SOCKS5 proxy for the tests: microsocks (scripts/deps.sh installs it) on a free loopback
//! port, optionally asking for a username and password, and making its connections from
//! 127.0.0.3, so that a broker sees which connections came through it. Killed when dropped.
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, program};

/// The address microsocks connects to brokers from: no client of the tests uses it.
pub const PROXY_SOURCE: &str = "127.0.0.3";

pub struct Socks {
    pub port: u16,
    child: Child,
}

impl Socks {
    /// Starts microsocks; with `login`, it refuses clients that do not give that username and
    /// password (RFC 1929).
    pub fn start(login: Option<(&str, &str)>) -> Socks {
        let microsocks = program("microsocks").expect("microsocks (scripts/deps.sh installs it)");
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(&microsocks);
            command.args(["-i", "127.0.0.1", "-p", &port.to_string(), "-b", PROXY_SOURCE]);
            if let Some((user, password)) = login {
                command.args(["-u", user, "-P", password]);
            }
            let child = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start microsocks");
            let mut proxy = Socks { port, child };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if proxy.child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return proxy;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = proxy.child.kill();
        }
        panic!("microsocks did not start");
    }

    /// `socks5h://[login@]127.0.0.1:port`, as `proxy` and `--proxy` take it.
    pub fn url(&self, login: Option<(&str, &str)>) -> String {
        match login {
            Some((user, password)) => format!("socks5h://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("socks5h://127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
