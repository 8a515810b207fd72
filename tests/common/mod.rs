//! Shared helpers for the integration tests: a real mosquitto on a free loopback port, and C test
//! programs compiled with the `cc` crate against the library cargo just built.
#![allow(dead_code)] // each test binary uses a different subset

pub mod amqtt;
pub mod auth;
pub mod engine;
pub mod fake;
pub mod pki;
pub mod proxy;
pub mod record;
pub mod scripted;
pub mod socks;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A mosquitto process owned by one test; killed when dropped.
pub struct Broker {
    pub port: u16,
    pub dir: std::sync::Arc<TempDir>,
    /// Config file, kept so `restart` brings the same broker (port, persistence) back.
    conf: PathBuf,
    child: Child,
}

/// The installed program `name`: on the PATH, or in an sbin directory (where Debian puts the
/// broker).
pub fn program(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

pub fn mosquitto_path() -> PathBuf {
    program("mosquitto").expect("mosquitto not found: install it (apt-get install mosquitto) or run .ci/run")
}

/// c_examples/mqttc_pub.c, mqttc_sub.c and mqttc_rr.c, compiled once per test binary (tests run in
/// parallel and would race on the files): (mqttc_pub, mqttc_sub, mqttc_rr).
pub fn cli_tools() -> &'static (PathBuf, PathBuf, PathBuf) {
    static TOOLS: std::sync::OnceLock<(PathBuf, PathBuf, PathBuf)> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| {
        let tool = |name: &str| compile_c(name, &[project_dir().join(format!("c_examples/{name}.c"))]);
        (tool("mqttc_pub"), tool("mqttc_sub"), tool("mqttc_rr"))
    })
}

/// mosquitto's dynamic security plugin (in Debian's mosquitto package), for tests that need the
/// broker to refuse a subscription: its `acl_file` never does.
pub fn dynamic_security_plugin() -> PathBuf {
    let name = "mosquitto_dynamic_security.so";
    let dirs = ["/usr/lib", "/usr/local/lib"].map(PathBuf::from);
    // Debian puts it in the multiarch directory (/usr/lib/x86_64-linux-gnu/ and the like).
    let multiarch = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("-linux-gnu"));
    dirs.into_iter()
        .chain(multiarch)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: it comes with mosquitto 2 (apt-get install mosquitto)"))
}

/// Writes `file`, a mosquitto password file with `users` (name, password) made by
/// `mosquitto_passwd`, readable by mosquitto once it dropped root. False when `mosquitto_passwd`
/// is not installed.
pub fn password_file(file: &Path, users: &[(&str, &str)]) -> bool {
    let Some(passwd) = program("mosquitto_passwd") else {
        return false;
    };
    for (i, (user, password)) in users.iter().enumerate() {
        let create = if i == 0 { &["-c", "-b"][..] } else { &["-b"][..] };
        let out = Command::new(&passwd)
            .args(create)
            .arg(file)
            .args([user, password])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosquitto_passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    true
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A directory removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    static N: Mutex<u32> = Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    let d = std::env::temp_dir().join(format!("mqttc-test-{}-{}-{}", std::process::id(), tag, *n));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    // mosquitto started as root drops to its own user before binding Unix sockets or writing
    // persistence files: let it write here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    TempDir(d)
}

/// Writes each (file name, content) into `dir`; returns their paths, in order.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with("")
    }

    /// Starts mosquitto with a loopback listener on a free port plus `extra` config lines.
    pub fn start_with(extra: &str) -> Broker {
        Broker::start_with_files(extra, &[])
    }

    /// Like `start_with`, with `files` (name, contents) written into the broker's directory first,
    /// for config that names a file (an `acl_file`, a plugin's config file, ...): `{dir}` in
    /// `extra` stands for that directory.
    pub fn start_with_files(extra: &str, files: &[(&str, &str)]) -> Broker {
        Broker::launch(|_| "persistence false\n".to_string(), extra, files)
    }

    /// A mosquitto that knows `users` (name, password) from the password file it writes at
    /// `file`, refuses anonymous clients, and lets each user talk only on users/<its name>/# and
    /// will/#: a message on users/<name>/... comes back only to a client the broker knows as
    /// <name>.
    pub fn start_with_users(file: &Path, users: &[(&str, &str)]) -> Broker {
        assert!(
            password_file(file, users),
            "mosquitto_passwd not found (scripts/deps.sh installs mosquitto)"
        );
        Broker::start_with_files(
            &format!(
                "allow_anonymous false\npassword_file {}\nacl_file {{dir}}/acl\n",
                file.display()
            ),
            &[("acl", "pattern readwrite users/%u/#\npattern readwrite will/#\n")],
        )
    }

    /// Like `start_with`, but with persistence in the broker's temp dir, saved after every change
    /// (`autosave_on_changes` with an interval of 1), so sessions, subscriptions and queued
    /// messages survive `kill` + `restart` as far as mosquitto allows. Caveats (mosquitto 2.0):
    /// only subscription changes, retained messages and queued messages count as changes, so a
    /// bare CONNECT of a persistent session is NOT saved until one of those happens; and the save
    /// runs in mosquitto's main loop just after the change (after e.g. the SUBACK is sent), so a
    /// test should wait for `dir/mosquitto.db` to appear (or be rewritten) before killing.
    pub fn start_persistent(extra: &str) -> Broker {
        Broker::launch(
            |dir| {
                format!(
                    "persistence true\npersistence_location {}/\nautosave_interval 1\nautosave_on_changes true\n",
                    dir.display()
                )
            },
            extra,
            &[],
        )
    }

    /// Writes `files` into a new directory, and a config with `settings(dir)` and `extra` (`{dir}`
    /// replaced) on a free port, and starts mosquitto, retrying with another port if the probed
    /// one was taken meanwhile.
    fn launch(settings: impl Fn(&Path) -> String, extra: &str, files: &[(&str, &str)]) -> Broker {
        let dir = std::sync::Arc::new(temp_dir("broker"));
        for (name, contents) in files {
            std::fs::write(dir.join(name), contents).unwrap();
        }
        let extra = extra.replace("{dir}", &dir.display().to_string());
        let conf = dir.join("mosquitto.conf");
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\n{}log_dest stderr\nlog_type error\nlog_type warning\n{extra}\n",
                    settings(&dir)
                ),
            )
            .unwrap();
            let mut b = Broker {
                port,
                dir: dir.clone(),
                child: Broker::spawn(&conf),
                conf: conf.clone(),
            };
            if b.wait_ready(Duration::from_secs(10)) {
                return b;
            }
            // Port taken between probe and bind: try another.
        }
        panic!("mosquitto did not start");
    }

    fn spawn(conf: &Path) -> Child {
        Command::new(mosquitto_path())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto")
    }

    /// SIGKILLs mosquitto (no clean shutdown, so no final persistence save) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERMs mosquitto, which saves its database (when persistent) and exits, and reaps it.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        if self.is_running() && unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) } == 0 {
            let _ = self.child.wait();
        }
    }

    /// Starts mosquitto again with the same config on the same port (killing it first if it is
    /// still running). Retries for ~5 s in case the port is not yet bindable; panics if the
    /// broker does not come up.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.child = Broker::spawn(&self.conf);
            if self.wait_ready(deadline.saturating_duration_since(Instant::now())) {
                return;
            }
            self.kill();
            if Instant::now() >= deadline {
                panic!(
                    "mosquitto did not restart on port {} within 5 s (config {})",
                    self.port,
                    self.conf.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The mosquitto process's id, for a test that signals it (SIGHUP: reread the password and
    /// ACL files).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the mosquitto process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the listener accepts connections; false if mosquitto exited or `timeout` passed.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Another test's broker may hold the probed port (it was free when probed): only a
            // listener of our own child counts, and ours then exits failing to bind.
            if self.child_listens() && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the socket listening on 127.0.0.1:`port` is one of our child's open files: its
    /// inode in /proc/net/tcp among the `socket:[inode]` links in /proc/<pid>/fd.
    fn child_listens(&self) -> bool {
        let local = format!("0100007F:{:04X}", self.port);
        let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
            return false;
        };
        let inodes: Vec<String> = table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                // Columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
                (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
            })
            .collect();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// target/<profile>, where cargo put libmqttclient.so for this test run.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `MQTTC_SANITIZE=address` (scripts/test.sh sets it for a second run of the C tests) builds C
/// programs with AddressSanitizer, LeakSanitizer included, and with tests/c/asan_options.c, which
/// turns leak detection on. The library itself is not instrumented: ASan's malloc/free
/// interceptors still see every allocation it makes, so leaks and misuse across the C boundary
/// are caught. Empty or unset: a normal build.
pub fn sanitizer() -> Option<String> {
    std::env::var("MQTTC_SANITIZE").ok().filter(|s| !s.is_empty())
}

/// Compiles C sources into an executable linked against libmqttclient.so, with the project's
/// warning flags (and the sanitizer, see `sanitizer`). Each test binary compiles into its own
/// directory, so parallel tests don't race.
pub fn compile_c(name: &str, sources: &[PathBuf]) -> PathBuf {
    compile_c_with(name, sources, &[])
}

/// `compile_c` also linking the system libraries `libs` (e.g. `-lpaho-mqtt3a`).
pub fn compile_c_with(name: &str, sources: &[PathBuf], libs: &[&str]) -> PathBuf {
    compile(name, sources, false, &["-std=c11", "-D_POSIX_C_SOURCE=200809L"], libs)
}

/// Compiles C++17 sources (include/mqttclient.hpp's tests and examples) the same way as
/// `compile_c`, with `flags` added (e.g. `-fno-exceptions`).
pub fn compile_cxx(name: &str, sources: &[PathBuf], flags: &[&str]) -> PathBuf {
    let std = ["-std=c++17"];
    compile(name, sources, true, &[&std[..], flags].concat(), &[])
}

fn compile(name: &str, sources: &[PathBuf], cpp: bool, flags: &[&str], libs: &[&str]) -> PathBuf {
    let out_dir = lib_dir().join("c-tests").join(std::process::id().to_string());
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(name);
    // Tests of one binary run in parallel and may build the same program: each links its own
    // file and renames it into place, so none executes a file another is still writing
    // ("Text file busy").
    let partial = out_dir.join(format!("{name}.{:?}.partial", std::thread::current().id()));
    assert!(
        lib_dir().join("libmqttclient.so").exists(),
        "{} has no libmqttclient.so: run `cargo build --lib` before the tests (scripts/test.sh does)",
        lib_dir().display()
    );
    // The programs need the library by its SONAME, a link build.rs makes next to it (Linux).
    let soname = env!("MQTTC_SONAME");
    assert!(
        !env!("MQTTC_TARGET").contains("linux") || lib_dir().join(soname).exists(),
        "{} has no {soname} link to libmqttclient.so: build.rs makes it when it runs (`touch build.rs; cargo build --lib`)",
        lib_dir().display()
    );
    let target = env!("MQTTC_TARGET");
    let compiler = cc::Build::new()
        .cpp(cpp)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .target(target)
        .host(target)
        .opt_level(1)
        .debug(true)
        .out_dir(&out_dir)
        .get_compiler();
    let mut cmd = compiler.to_command();
    cmd.args(flags)
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(project_dir().join("include"))
        .args(sources)
        .args(sanitizer().into_iter().flat_map(|kind| {
            [
                format!("-fsanitize={kind}"),
                "-fno-omit-frame-pointer".into(),
                project_dir().join("tests/c/asan_options.c").display().to_string(),
            ]
        }))
        .arg("-o")
        .arg(&partial)
        .arg("-L")
        .arg(lib_dir())
        .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
        .args(libs)
        .args(["-lmqttclient", "-lpthread"]);
    let out = cmd.output().expect("run the compiler");
    assert!(
        out.status.success(),
        "compiling {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &exe).unwrap();
    exe
}

/// Under `MQTTC_SANITIZE=address`: writes `code`, a program that leaks, as `file_name`, builds it
/// with `compile` and checks that LeakSanitizer reports the leak and fails the program, proof
/// that the sanitizer run is not vacuous. Without a sanitizer, does nothing.
pub fn assert_leak_reported(file_name: &str, code: &str, compile: impl FnOnce(PathBuf) -> PathBuf) {
    if sanitizer().is_none() {
        return;
    }
    let dir = temp_dir("leak");
    let source = dir.join(file_name);
    std::fs::write(&source, code).unwrap();
    let exe = compile(source);
    let (code, out, err) = run_program(&mut Command::new(&exe), Duration::from_secs(60));
    assert_ne!(code, 0, "the leak went unreported\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("ERROR: LeakSanitizer: detected memory leaks"), "{err}");
}

/// Runs a program with a timeout; returns (exit code, stdout, stderr).
pub fn run_program(cmd: &mut Command, timeout: Duration) -> (i32, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err_t = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -999;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (code, out_t.join().unwrap(), err_t.join().unwrap())
}

/// The number after `key=` on the first line of a program's output containing `line` that has one
/// (words split at spaces and ';'); panics, with the output, when there is none.
pub fn figure(out: &str, line: &str, key: &str) -> i64 {
    out.lines()
        .filter(|l| l.contains(line))
        .flat_map(|l| l.split([' ', ';']))
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= on a \"{line}\" line:\n{out}"))
}

/// Reads lines from a child's stdout on a thread; `recv_line` waits with a timeout.
pub fn line_reader(stdout: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}
