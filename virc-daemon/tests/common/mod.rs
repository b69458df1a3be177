//! Helpers shared by the tests that run the daemon binary as a child process.
#![allow(dead_code, reason = "each test file uses a part")]

use std::{path::Path, time::Duration};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use virc_proto::v1::{self as pb, system_client::SystemClient};

/// Kills the daemon if the test ends early.
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A channel to the daemon socket at `path`, if it accepts.
pub async fn connect(path: &Path) -> Option<Channel> {
    let path = path.to_owned();
    Endpoint::from_static("http://virc.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .ok()
}

/// Waits until the daemon on `sock` answers `Status`.
pub async fn ready(sock: &Path) -> Channel {
    for _ in 0..500 {
        if let Some(ch) = connect(sock).await
            && SystemClient::new(ch.clone())
                .status(pb::StatusRequest {})
                .await
                .is_ok()
        {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("daemon did not come up");
}
