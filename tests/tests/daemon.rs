//! End to end: listeners, authentication, storage exclusivity, health,
//! reflection and shutdown of an in-process daemon.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use tokio_stream::StreamExt as _;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};
use virc_daemon::{
    Listener,
    config::{Config, Credentials, Secret},
};
use virc_proto::v1::{self as pb, system_client::SystemClient};
use virc_tests::{TestDaemon, connect, test_config};

fn with_token() -> Credentials {
    Credentials {
        api_token: Some(Secret::new("t0ken-for-tests")),
        ..Credentials::default()
    }
}

#[tokio::test]
async fn tcp_listener_refuses_calls_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.daemon.tcp = Some("127.0.0.1:0".parse().unwrap());
    let tcp = Listener::bind_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = tcp.describe().strip_prefix("tcp:").unwrap().to_owned();
    let d = TestDaemon::start(config, with_token(), vec![tcp])
        .await
        .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut anon = SystemClient::new(channel.clone());
    let err = anon.status(pb::StatusRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(
        err.message().contains("missing API token"),
        "{}",
        err.message()
    );

    let bad = |mut req: tonic::Request<()>| {
        req.metadata_mut()
            .insert("authorization", "Bearer wrong".parse().unwrap());
        Ok(req)
    };
    let err = SystemClient::with_interceptor(channel.clone(), bad)
        .status(pb::StatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let good = |mut req: tonic::Request<()>| {
        req.metadata_mut()
            .insert("authorization", "Bearer t0ken-for-tests".parse().unwrap());
        Ok(req)
    };
    let status = SystemClient::with_interceptor(channel, good)
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.listeners.iter().any(|l| l.starts_with("tcp:")));
    assert!(status.listeners.iter().any(|l| l.starts_with("unix:")));
    d.stop().await.unwrap();
}

#[tokio::test]
async fn tcp_without_a_configured_token_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.daemon.tcp = Some("127.0.0.1:0".parse().unwrap());
    let err = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("api_token"), "{err}");
}

#[tokio::test]
async fn second_daemon_on_one_data_dir_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let mut config = test_config(dir.path());
    config.daemon.socket = Some(dir.path().join("other.sock"));
    let err = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("in use by another virc-daemon"), "{err}");
    // The first one is unharmed.
    SystemClient::new(first.channel().await)
        .status(pb::StatusRequest {})
        .await
        .unwrap();
    first.stop().await.unwrap();
}

#[tokio::test]
async fn second_daemon_on_one_socket_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let err = Listener::bind_unix(&first.socket)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already listening"), "{err}");
    first.stop().await.unwrap();
}

#[tokio::test]
async fn socket_is_group_accessible_only_and_removed_on_exit() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let socket = d.socket.clone();
    d.stop().await.unwrap();
    assert!(!socket.exists());
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(d.channel().await);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "virc.v1.System".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let mut refl = ServerReflectionClient::new(d.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "virc.v1.Bots",
        "virc.v1.Orders",
        "virc.v1.Market",
        "virc.v1.Account",
        "virc.v1.Events",
        "virc.v1.System",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    d.stop().await.unwrap();
}

#[tokio::test]
async fn system_shutdown_stops_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let socket = config.socket();
    let listener = Listener::bind_unix(&socket).await.unwrap();
    let task = tokio::spawn(virc_daemon::run(
        config,
        Credentials::default(),
        vec![listener],
        std::future::pending(),
    ));
    let mut sys = loop {
        if let Ok(ch) = connect(&socket).await {
            break SystemClient::new(ch);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let v = sys
        .version(pb::VersionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.api, "virc.v1");
    sys.shutdown(pb::ShutdownRequest {
        reason: "test".into(),
    })
    .await
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("exits within 5 s")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bad_config_file_names_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("virc.toml");
    std::fs::write(
        &path,
        "[daemon]\nlog_level = \"info\"\n\n[events]\nmax_events = -3\n",
    )
    .unwrap();
    let err = Config::load(Some(&path)).unwrap_err().to_string();
    assert!(
        err.contains("line 5") && err.contains("max_events") && err.contains("at least 1"),
        "{err}"
    );
}
