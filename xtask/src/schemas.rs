//! `cargo xtask schemas fetch|path|status`: the pinned upstream schema set in a local cache.
//!
//! `fetch` downloads each pinned file with `curl` (no HTTP client is linked into the configure
//! path) and stores it only if its git blob id matches the pin; afterwards `verify` runs
//! offline. The pins live in `verify::pins`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use ::verify::pins::{self, DEFAULT_BASE_URL, FileStatus};
use anyhow::{Context, bail};
use lexopt::ValueExt;

use crate::util;

const HELP: &str = "\
cargo xtask schemas <fetch|path|status> [options]

  fetch    download the pinned CRD and Kubernetes OpenAPI schemas, the charts' values schemas
           and talhelper's talconfig schema into the cache (needs network once; every file is
           checked against its pinned git blob id before it is stored)
  path     print the cache directory
  status   show which pinned files are present

Options:
  --dir DIR        use DIR instead of the cache ($CLUSTER_SCHEMAS_DIR, else
                   $XDG_CACHE_HOME/aiops-cluster-template/schemas or ~/.cache/…)
  --base-url URL   download from URL/<repo>/<commit>/<path> (default: https://raw.githubusercontent.com)
  -h, --help       print this help
";

pub fn run(args: &mut lexopt::Parser) -> anyhow::Result<ExitCode> {
    use lexopt::Arg::{Long, Short, Value};
    let mut action: Option<String> = None;
    let mut dir: Option<PathBuf> = None;
    let mut base_url = DEFAULT_BASE_URL.to_owned();
    while let Some(arg) = args.next()? {
        match arg {
            Long("dir") => dir = Some(args.value()?.into()),
            Long("base-url") => base_url = args.value()?.string()?,
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Value(v) if action.is_none() => action = Some(v.string()?),
            other => {
                eprintln!(
                    "xtask schemas: unexpected argument {}",
                    util::describe(&other)
                );
                eprint!("{HELP}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let Some(dir) = dir.or_else(pins::cache_dir) else {
        eprintln!("xtask schemas: no cache directory: set CLUSTER_SCHEMAS_DIR or HOME");
        return Ok(ExitCode::from(2));
    };
    match action.as_deref() {
        Some("fetch") => match fetch(&dir, &base_url) {
            Ok(f) => {
                println!(
                    "schemas: {} downloaded, {} already present, in {}",
                    f.downloaded,
                    f.kept,
                    dir.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("xtask schemas fetch: {e:#}");
                Ok(ExitCode::from(2))
            }
        },
        Some("path") => {
            println!("{}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Some("status") => {
            let mut complete = true;
            for (pin, state) in pins::status_of(&dir, pins::all()) {
                let text = match &state {
                    FileStatus::Ok => "ok".to_owned(),
                    FileStatus::Missing => "missing".to_owned(),
                    FileStatus::Modified(blob) => format!("modified (blob {blob})"),
                    FileStatus::Unusable(why) => {
                        format!("unusable ({})", schema::terminal_safe(why))
                    }
                };
                complete &= state == FileStatus::Ok;
                println!("{:<9} {}", text, pin.relative_path().display());
            }
            println!("cache: {}", dir.display());
            if !complete {
                println!("run `cargo xtask schemas fetch` to complete it");
            }
            Ok(if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        _ => {
            eprint!("{HELP}");
            Ok(ExitCode::from(2))
        }
    }
}

pub struct Fetched {
    pub downloaded: usize,
    pub kept: usize,
}

/// Downloads every pinned file that is not already present and intact. All files are tried and
/// the error lists every one that failed — unless the network itself is down (the host cannot be
/// resolved or reached): then the first failure stops the run, instead of paying the same
/// timeout once per file.
pub fn fetch(dir: &Path, base_url: &str) -> anyhow::Result<Fetched> {
    fetch_pins(dir, base_url, pins::all())
}

/// [`fetch`] of some pinned files.
fn fetch_pins<'p>(
    dir: &Path,
    base_url: &str,
    wanted: impl Iterator<Item = &'p pins::PinnedFile>,
) -> anyhow::Result<Fetched> {
    let mut out = Fetched {
        downloaded: 0,
        kept: 0,
    };
    let mut failures = Vec::new();
    let states = pins::status_of(dir, wanted);
    let total = states.len();
    for (pin, state) in states {
        if state == FileStatus::Ok {
            out.kept += 1;
            continue;
        }
        match download(dir, pin, base_url) {
            Ok(()) => out.downloaded += 1,
            Err(e) if e.downcast_ref::<Unreachable>().is_some() => {
                bail!(
                    "{e:#}\n  help: check the network (or a proxy: curl honours HTTPS_PROXY); nothing else was tried, {} file(s) already stored are kept",
                    out.kept + out.downloaded
                );
            }
            Err(e) => failures.push(format!("{}: {e:#}", pin.relative_path().display())),
        }
    }
    if failures.is_empty() {
        // Writes the digest of every pinned file, so that the first `verify` is already fast.
        let _ = ::verify::SchemaSet::load_pinned(dir);
        ::verify::store_chart_digests(dir);
    } else {
        bail!(
            "{} of {} files could not be stored:\n  {}",
            failures.len(),
            total,
            failures.join("\n  ")
        );
    }
    Ok(out)
}

fn download(dir: &Path, pin: &pins::PinnedFile, base_url: &str) -> anyhow::Result<()> {
    // `store_verified` creates the folders, through directory handles that follow no symlink.
    let url = pin.url(base_url);
    // The body comes back on curl's stdout, never through a file in the cache: a symlink planted
    // at a predictable temporary name there would have sent the download wherever it points.
    let out = Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--location"])
        .args([
            "--retry",
            "2",
            "--connect-timeout",
            "20",
            "--max-time",
            "300",
            // No pinned file is near this; a larger answer is not one of them.
            "--max-filesize",
            "16777216",
        ])
        .arg("--output")
        .arg("-")
        .arg(&url)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run `curl` (it is needed to download schemas)")?;
    let status = out.status;
    if !status.success() {
        // curl's exit codes for "no network": 5/6 cannot resolve the proxy/host, 7 cannot
        // connect, 28 timed out (connect-timeout), 35 TLS handshake failed.
        if let Some(code @ (5 | 6 | 7 | 28 | 35)) = status.code() {
            return Err(Unreachable { url, code }.into());
        }
        bail!("curl failed ({status}) for {url}");
    }
    let bytes = out.stdout;
    pins::store_verified(dir, pin, &bytes)?;
    Ok(())
}

/// The download host could not be reached at all (as opposed to one file failing).
#[derive(Debug)]
struct Unreachable {
    url: String,
    code: i32,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.code {
            5 | 6 => "the host name could not be resolved",
            7 => "the connection was refused",
            28 => "the connection timed out",
            _ => "the TLS handshake failed",
        };
        write!(
            f,
            "cannot reach {} ({why}; curl exit {})",
            self.url, self.code
        )
    }
}

impl std::error::Error for Unreachable {}

#[cfg(test)]
mod tests {
    //! The fetcher against a loopback HTTP server that serves `../shared/schemas` at the
    //! raw.githubusercontent.com paths of the pins.

    use super::*;
    use ::verify::pins::PINS;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn shared_schemas() -> PathBuf {
        match std::env::var_os("CLUSTER_SHARED_DIR") {
            Some(d) => PathBuf::from(d).join("schemas"),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/schemas"),
        }
    }

    fn curl_available() -> bool {
        let ok = Command::new("curl").arg("--version").output().is_ok();
        if !ok {
            assert!(
                std::env::var("REQUIRE_ORACLES").as_deref() != Ok("1"),
                "curl is required (REQUIRE_ORACLES=1)"
            );
            eprintln!("SKIP: curl not found; the schema fetcher test needs it");
        }
        ok
    }

    /// Serves `files` (URL path → body) on 127.0.0.1; counts requests.
    fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let response = match files.get(path) {
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response);
            }
        });
        (format!("http://127.0.0.1:{port}"), hits)
    }

    fn upstream_files(tamper: Option<&str>) -> HashMap<String, Vec<u8>> {
        let shared = shared_schemas();
        PINS.iter()
            .map(|pin| {
                let mut body = std::fs::read(shared.join(pin.relative_path()))
                    .expect("shared schema file (set CLUSTER_SHARED_DIR)");
                if Some(pin.file) == tamper {
                    body.extend_from_slice(b"\n# tampered\n");
                }
                let url = pin.url("http://x");
                (url.trim_start_matches("http://x").to_owned(), body)
            })
            .collect()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-schemas-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Symlinks planted in the cache, at a pinned path and at the name the download used to go
    /// through, are replaced, never written through: their targets keep their bytes.
    #[test]
    fn fetch_writes_through_no_planted_symlink() {
        if !curl_available() {
            return;
        }
        let (base, _) = serve(upstream_files(None));
        let dir = temp_dir("links");
        let victim = temp_dir("victim");
        std::fs::create_dir_all(&victim).unwrap();
        let pin = &PINS[0];
        std::fs::create_dir_all(dir.join(pin.folder)).unwrap();
        std::fs::write(victim.join("a"), "keep a").unwrap();
        std::fs::write(victim.join("b"), "keep b").unwrap();
        std::os::unix::fs::symlink(victim.join("a"), dir.join(pin.relative_path())).unwrap();
        let old_tmp = dir.join(pin.folder).join(format!(".{}.download", pin.file));
        std::os::unix::fs::symlink(victim.join("b"), &old_tmp).unwrap();
        fetch_pins(&dir, &base, std::iter::once(pin)).expect("fetch");
        assert_eq!(std::fs::read_to_string(victim.join("a")).unwrap(), "keep a");
        assert_eq!(std::fs::read_to_string(victim.join("b")).unwrap(), "keep b");
        assert_eq!(
            pins::status_of(&dir, std::iter::once(pin))[0].1,
            FileStatus::Ok
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&victim);
    }

    #[test]
    fn fetch_downloads_verifies_and_then_stays_offline() {
        if !curl_available() {
            return;
        }
        let (base, hits) = serve(upstream_files(None));
        let dir = temp_dir("ok");
        let first = fetch_pins(&dir, &base, PINS.iter()).expect("fetch");
        assert_eq!(first.downloaded, PINS.len());
        assert!(pins::status(&dir).iter().all(|(_, s)| *s == FileStatus::Ok));
        let set = ::verify::SchemaSet::load(&dir).expect("schema set");
        let shared = ::verify::SchemaSet::load(&shared_schemas()).expect("shared set");
        assert_eq!(set.len(), shared.len());
        let requests = hits.load(Ordering::SeqCst);
        let second = fetch_pins(&dir, &base, PINS.iter()).expect("second fetch");
        assert_eq!((second.downloaded, second.kept), (0, PINS.len()));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            requests,
            "nothing is downloaded again"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fetch_stops_at_the_first_failure_when_the_host_is_unreachable() {
        if !curl_available() {
            return;
        }
        // A port nobody listens on: every connection is refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = temp_dir("unreachable");
        let err = format!(
            "{:#}",
            fetch(&dir, &format!("http://127.0.0.1:{port}"))
                .err()
                .unwrap()
        );
        assert!(err.contains("cannot reach"), "{err}");
        assert!(err.contains("connection was refused"), "{err}");
        assert!(err.contains("nothing else was tried"), "{err}");
        // One file named, not one line per pinned file.
        assert_eq!(err.matches("http://127.0.0.1").count(), 1, "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fetch_refuses_a_file_that_is_not_the_pin() {
        if !curl_available() {
            return;
        }
        let tampered = "gateway.envoyproxy.io_backends.yaml";
        let (base, _) = serve(upstream_files(Some(tampered)));
        let dir = temp_dir("tampered");
        let err = fetch_pins(&dir, &base, PINS.iter())
            .err()
            .expect("must fail");
        assert!(format!("{err:#}").contains(tampered), "{err:#}");
        assert!(!dir.join("envoy-gateway-v1.6.7").join(tampered).exists());
        let ok = pins::status(&dir)
            .iter()
            .filter(|(_, s)| *s == FileStatus::Ok)
            .count();
        assert_eq!(ok, PINS.len() - 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
