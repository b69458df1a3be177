//! Connecting to the daemon: the Unix socket (found automatically) or a TCP
//! endpoint with a bearer token, with errors that say where we looked.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
};

use hyper_util::rt::TokioIo;
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint, Uri},
};

use crate::error::CliError;

/// How to reach the daemon, from the global flags.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--socket` / `VIRC_SOCKET`.
    pub socket: Option<PathBuf>,
    /// `--endpoint` / `VIRC_ENDPOINT`.
    pub endpoint: Option<String>,
    /// `--token` / `VIRC_TOKEN`.
    pub token: Option<String>,
}

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Debug, Clone)]
pub struct Auth(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connected channel with authentication applied.
pub type Conn = InterceptedService<Channel, Auth>;

/// Socket paths tried in order when none is given.
pub fn socket_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(dir).join("virc/virc.sock"));
    }
    out.push(PathBuf::from("/run/virc/virc.sock"));
    if let Some(uid) = std::fs::metadata("/proc/self")
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .filter(|uid| *uid != 0)
    {
        {
            out.push(PathBuf::from(format!("/tmp/virc-{uid}/virc.sock")));
        }
    }
    out
}

/// Connects to the daemon.
pub async fn connect(target: &Target) -> Result<Conn, CliError> {
    let auth = match &target.token {
        Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
            CliError::Usage(
                "the API token contains characters that cannot be sent in a header".into(),
            )
        })?),
        None => None,
    };
    let channel = match &target.endpoint {
        Some(endpoint) => connect_tcp(endpoint).await?,
        None => {
            let path = match &target.socket {
                Some(p) => p.clone(),
                None => {
                    let candidates = socket_candidates();
                    match candidates.iter().find(|p| p.exists()) {
                        Some(p) => p.clone(),
                        None => {
                            return Err(CliError::Unreachable {
                                tried: describe(&candidates),
                                detail: "no socket found".into(),
                            });
                        }
                    }
                }
            };
            connect_unix(&path).await?
        }
    };
    Ok(InterceptedService::new(channel, Auth(auth)))
}

fn describe(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| format!("unix:{}", p.display()))
        .collect()
}

async fn connect_unix(path: &Path) -> Result<Channel, CliError> {
    // Probe first, so the error names the real cause instead of a transport error.
    if let Err(e) = tokio::net::UnixStream::connect(path).await {
        return Err(match e.kind() {
            ErrorKind::PermissionDenied => CliError::PermissionDenied(path.to_owned()),
            ErrorKind::NotFound => CliError::Unreachable {
                tried: describe(&[path.to_owned()]),
                detail: "no socket there".into(),
            },
            ErrorKind::ConnectionRefused => CliError::Unreachable {
                tried: describe(&[path.to_owned()]),
                detail: "connection refused (a daemon that exited left its socket behind)".into(),
            },
            _ => CliError::Unreachable {
                tried: describe(&[path.to_owned()]),
                detail: e.to_string(),
            },
        });
    }
    let path = path.to_owned();
    let endpoint = windows(Endpoint::from_static("http://virc.invalid"));
    let shown = path.clone();
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|e| CliError::Unreachable {
            tried: describe(&[shown]),
            detail: e.to_string(),
        })
}

/// HTTP/2 flow-control windows large enough for a whole answer (a list of
/// 1,000 bots is ~200 KB): with the 64 KB default, every window's worth of a
/// reply waits for a WINDOW_UPDATE round trip between the two processes.
fn windows(ep: Endpoint) -> Endpoint {
    ep.initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
}

async fn connect_tcp(endpoint: &str) -> Result<Channel, CliError> {
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let ep = Endpoint::from_shared(with_scheme.clone())
        .map_err(|e| CliError::Usage(format!("invalid --endpoint `{endpoint}`: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    windows(ep)
        .connect()
        .await
        .map_err(|e| CliError::Unreachable {
            tried: vec![with_scheme],
            detail: source_text(&e),
        })
}

fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text = format!("{text}: {s}");
        cur = s.source();
    }
    text
}
