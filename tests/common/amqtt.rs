//! amqtt (PyPI), a real broker with WebSocket listeners, which Debian's mosquitto is built without.
//! `scripts/deps.sh` installs it into `target/amqtt-venv`; `MQTTC_AMQTT` may name another binary.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, free_port, project_dir, temp_dir};

pub struct Amqtt {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

fn amqtt_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MQTTC_AMQTT") {
        return p.into();
    }
    let p = project_dir().join("target/amqtt-venv/bin/amqtt");
    assert!(p.is_file(), "{} is missing: run scripts/deps.sh", p.display());
    p
}

impl Amqtt {
    /// Starts amqtt with one WebSocket listener on a free loopback port; `tls` gives the PEM
    /// certificate and key of a `wss` listener.
    pub fn start_ws(tls: Option<(&std::path::Path, &std::path::Path)>) -> Amqtt {
        let dir = temp_dir("amqtt");
        let ssl = match tls {
            Some((cert, key)) => format!(
                "    ssl: on\n    certfile: {}\n    keyfile: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.join("amqtt.yaml");
            std::fs::write(
                &conf,
                format!(
                    "listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:{port}\n{ssl}plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
                ),
            )
            .unwrap();
            let mut child = Command::new(amqtt_path())
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start amqtt");
            // Python's imports take a few seconds.
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Amqtt { port, child, _dir: dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("amqtt did not start");
    }
}

impl Drop for Amqtt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
