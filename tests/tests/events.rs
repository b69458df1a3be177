//! End to end: the event stream over gRPC, resumed across daemon restarts.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use tokio_stream::StreamExt as _;
use virc_daemon::config::Credentials;
use virc_proto::v1::{self as pb, events_client::EventsClient, system_client::SystemClient};
use virc_tests::{TestDaemon, test_config};

async fn collect_to_head(d: &TestDaemon, from: u64) -> Vec<pb::Event> {
    let mut client = EventsClient::new(d.channel().await);
    let req = pb::SubscribeRequest {
        from_seq: Some(from),
        stop_at_head: true,
        ..Default::default()
    };
    let stream = client.subscribe(req).await.unwrap().into_inner();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.map(|e| e.unwrap()).collect::<Vec<_>>(),
    )
    .await
    .expect("stream ends at head")
}

#[tokio::test]
async fn stop_at_head_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let events = collect_to_head(&d, 0).await;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
    d.stop().await.unwrap();
}

#[tokio::test]
async fn resume_across_restart_has_no_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    // A live follower sees daemon_stopping and then the shutdown status with its resume point.
    let mut client = EventsClient::new(d.channel().await);
    let mut stream = client
        .subscribe(pb::SubscribeRequest {
            from_seq: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.seq, 1);
    assert!(matches!(
        first.payload,
        Some(pb::event::Payload::DaemonStarted(_))
    ));
    d.stop().await.unwrap();
    let mut seen = vec![first.seq];
    let status = loop {
        match stream.next().await {
            Some(Ok(e)) => seen.push(e.seq),
            Some(Err(s)) => break Some(s),
            None => break None,
        }
    };
    // The stream ends with the exact point to resume from: the follower may
    // or may not have received daemon_stopping (2) before shutdown, but it
    // is told precisely where it stopped.
    let resume = match status {
        Some(s) => {
            assert_eq!(s.code(), tonic::Code::Unavailable);
            let n = s
                .message()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap();
            assert!(
                s.message().contains("resume from sequence"),
                "{}",
                s.message()
            );
            n
        }
        None => seen.last().unwrap() + 1,
    };
    assert_eq!(
        resume,
        seen.last().unwrap() + 1,
        "the resume point follows the last event seen"
    );

    // Restart on the same data dir: the sequence continues and the cursor resumes exactly.
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    seen.extend(collect_to_head(&d, resume).await.iter().map(|e| e.seq));
    assert_eq!(
        seen,
        vec![1, 2, 3],
        "no gap and no duplicate across the restart"
    );
    let all = collect_to_head(&d, 0).await;
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    let status = SystemClient::new(d.channel().await)
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.event_tail, status.event_head), (1, 3));
    d.stop().await.unwrap();
}
