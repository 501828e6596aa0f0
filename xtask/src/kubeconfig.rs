//! Is the cluster of the current kubeconfig reachable? Answered before `ai-gateway status`
//! builds and starts the e2e crate's binary (minutes on a first build), so that a missing
//! kubeconfig or a cluster that is down is said once, at once, with exit code 2.
//!
//! xtask links no Kubernetes client: this reads the kubeconfig the way kubectl picks it
//! (`$KUBECONFIG`, a `:`-separated list, else `~/.kube/config`; the first `current-context`
//! wins), finds the current cluster's `server` and opens a TCP connection to it. Whether the API
//! server then answers is the e2e binary's own first check.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schema::yaml::{Limits, Node};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the cluster cannot be used; the text is for people (with a `help:` line).
#[derive(Debug)]
pub struct Unreachable(pub String);

/// What was found: the API server URL and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub context: String,
    pub file: PathBuf,
}

/// The kubeconfig files kubectl would read, in order.
pub fn files() -> Vec<PathBuf> {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => std::env::var_os("HOME")
            .map(|home| vec![PathBuf::from(home).join(".kube").join("config")])
            .unwrap_or_default(),
    }
}

fn load(file: &Path) -> Option<Node> {
    let bytes = schema::repofile::read_following(file, 1 << 20).ok()?;
    let text = schema::repofile::into_text(bytes).ok()?;
    let loaded = schema::yaml::load(&text, file, Limits::CONFIG);
    loaded.documents.into_iter().next()
}

fn named<'a>(docs: &'a [(PathBuf, Node)], list: &str, name: &str) -> Option<(&'a Path, &'a Node)> {
    docs.iter().find_map(|(file, doc)| {
        doc.get(list)?
            .as_seq()?
            .iter()
            .find(|item| item.get("name").and_then(Node::as_str) == Some(name))
            .map(|item| (file.as_path(), item))
    })
}

/// The current context's API server, or why there is none.
pub fn target() -> Result<Target, Unreachable> {
    let files = files();
    let docs: Vec<(PathBuf, Node)> = files
        .iter()
        .filter_map(|f| load(f).map(|d| (f.clone(), d)))
        .collect();
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if docs.is_empty() {
        return Err(Unreachable(format!(
            "no kubeconfig: {} {}\n  help: set KUBECONFIG to your cluster's kubeconfig (`cargo xtask talos kubeconfig` writes ./kubeconfig), or create ~/.kube/config",
            if shown.is_empty() {
                "HOME and KUBECONFIG are unset".to_owned()
            } else {
                shown.join(", ")
            },
            if shown.is_empty() {
                ""
            } else {
                "cannot be read as YAML"
            }
        )));
    }
    let Some((file, context)) = docs.iter().find_map(|(f, d)| {
        d.get("current-context")
            .and_then(Node::as_str)
            .filter(|c| !c.is_empty())
            .map(|c| (f.clone(), c.to_owned()))
    }) else {
        return Err(Unreachable(format!(
            "{}: no current-context\n  help: pick one with `kubectl config use-context NAME`",
            shown.join(", ")
        )));
    };
    let cluster = named(&docs, "contexts", &context).and_then(|(_, c)| {
        c.get("context")?
            .get("cluster")?
            .as_str()
            .map(str::to_owned)
    });
    let Some(cluster) = cluster else {
        return Err(Unreachable(format!(
            "{}: context `{context}` is not defined or names no cluster\n  help: `kubectl config get-contexts` lists them",
            file.display()
        )));
    };
    let server = named(&docs, "clusters", &cluster)
        .and_then(|(_, c)| c.get("cluster")?.get("server")?.as_str().map(str::to_owned));
    let Some(server) = server else {
        return Err(Unreachable(format!(
            "{}: cluster `{cluster}` (of context `{context}`) has no server\n  help: `kubectl config view --minify` shows what kubectl would use",
            file.display()
        )));
    };
    Ok(Target {
        server,
        context,
        file,
    })
}

/// `host:port` of an `https://host[:port][/path]` URL (`[v6]` hosts kept bracketed).
pub fn host_port(server: &str) -> Option<String> {
    let (scheme, rest) = server.split_once("://")?;
    let default = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    Some(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default}")
    })
}

/// Whether a proxy is configured: then a direct connection says nothing and is not tried.
fn proxied() -> bool {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// Reachability of the current cluster: `Ok` when a TCP connection to its API server opens
/// (or cannot be tested here: a proxy, in-cluster credentials).
pub fn check() -> Result<Option<Target>, Unreachable> {
    if std::env::var_os("KUBECONFIG").is_none()
        && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
    {
        return Ok(None); // In a pod: the client uses the service account.
    }
    let target = target()?;
    if proxied() {
        return Ok(Some(target));
    }
    let help = format!(
        "  help: is the cluster running? `kubectl --context {} cluster-info` tries the same; KUBECONFIG picks another kubeconfig",
        target.context
    );
    let Some(addr) = host_port(&target.server) else {
        return Err(Unreachable(format!(
            "cannot reach the cluster: `{}` (context `{}` in {}) is not an http(s) URL\n{help}",
            target.server,
            target.context,
            target.file.display()
        )));
    };
    let result = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())
        .and_then(|addrs| {
            let mut last = "no address".to_owned();
            for a in addrs {
                match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(last)
        });
    match result {
        Ok(()) => Ok(Some(target)),
        Err(why) => Err(Unreachable(format!(
            "cannot reach the cluster: its API server {} (context `{}` in {}) does not answer: {why}\n{help}",
            target.server,
            target.context,
            target.file.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_api_server_urls() {
        assert_eq!(
            host_port("https://10.0.0.1:6443").as_deref(),
            Some("10.0.0.1:6443")
        );
        assert_eq!(
            host_port("https://k8s.example.com").as_deref(),
            Some("k8s.example.com:443")
        );
        assert_eq!(
            host_port("https://[fd00::1]:6443/x").as_deref(),
            Some("[fd00::1]:6443")
        );
        assert_eq!(
            host_port("https://[fd00::1]").as_deref(),
            Some("[fd00::1]:443")
        );
        assert_eq!(host_port("http://h/").as_deref(), Some("h:80"));
        assert_eq!(host_port("unix:///x"), None);
        assert_eq!(host_port("10.0.0.1:6443"), None);
    }
}
