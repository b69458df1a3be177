//! The event bus: every state change gets a global, gap-free sequence number,
//! is appended to the persisted log, and is fanned out to live subscribers.
//!
//! # Invariants
//! - Sequence numbers start at 1, increase by one per event and continue
//!   across restarts (the next number is read back from the log).
//! - An event is written to the log (and, with `events.fsync`, flushed to
//!   disk) before any subscriber sees it, so a number a client has seen is
//!   never reused after a crash. Publishes are group-committed: one flush
//!   covers every event queued at that moment.
//! - [`EventsHandle::subscribe`] replays the log from the cursor in its own
//!   task, then asks the bus to go live *at exactly the next sequence*. The
//!   bus owns both the head and the subscriber list, so registration and
//!   publishing are serialized: no gap and no duplicate at the seam.
//! - The bus never awaits a subscriber. A live subscriber whose buffer is
//!   full gets `RESOURCE_EXHAUSTED "lagged; resume from sequence N"` in the
//!   slot kept for it and is dropped.
//!
//! # Threading model
//! One task ([`EventBus::run`]) owns the head, the retention state and the
//! subscriber list; callers hold a cloneable [`EventsHandle`].

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use virc_proto::v1::{self as pb, EventKind, event::Payload};

use crate::{
    clock::{Clock, to_timestamp},
    config::EventsConfig,
    store::{EventLog, StoreError},
};

/// What a live subscriber receives: an event, or the status that ends its stream.
pub type StreamItem = Result<pb::Event, Status>;

/// An event before the bus numbers it.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The bot the event is about, if any.
    pub bot_id: String,
    /// The product the event is about, if any.
    pub product_id: String,
    /// What happened.
    pub payload: Payload,
}

impl Draft {
    /// An event about nothing in particular (daemon, connections, warnings).
    pub fn new(payload: Payload) -> Self {
        Self {
            bot_id: String::new(),
            product_id: String::new(),
            payload,
        }
    }
}

/// Why the bus could not take a request.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus has stopped (daemon shutting down).
    #[error("the event bus has stopped")]
    Stopped,
    /// The log could not be written.
    #[error("event log: {0}")]
    Store(#[from] StoreError),
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    bots: HashSet<String>,
    products: HashSet<String>,
    kinds: HashSet<i32>,
}

impl Filter {
    /// A filter from the request's lists; an empty list matches everything.
    pub fn new(bots: Vec<String>, products: Vec<String>, kinds: Vec<i32>) -> Self {
        Self {
            bots: bots.into_iter().collect(),
            products: products.into_iter().collect(),
            kinds: kinds.into_iter().collect(),
        }
    }

    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &pb::Event) -> bool {
        (self.bots.is_empty() || self.bots.contains(&event.bot_id))
            && (self.products.is_empty() || self.products.contains(&event.product_id))
            && (self.kinds.is_empty()
                || event
                    .payload
                    .as_ref()
                    .is_some_and(|p| self.kinds.contains(&(kind_of(p) as i32))))
    }
}

/// The kind of an event payload, for filters and display.
pub fn kind_of(payload: &Payload) -> EventKind {
    match payload {
        Payload::DaemonStarted(_) => EventKind::DaemonStarted,
        Payload::DaemonStopping(_) => EventKind::DaemonStopping,
        Payload::BotCreated(_) => EventKind::BotCreated,
        Payload::BotStatus(_) => EventKind::BotStatus,
        Payload::BotStep(_) => EventKind::BotStep,
        Payload::BotDeleted(_) => EventKind::BotDeleted,
        Payload::Order(_) => EventKind::Order,
        Payload::Fill(_) => EventKind::Fill,
        Payload::MarketUpdate(_) => EventKind::MarketUpdate,
        Payload::Connection(_) => EventKind::Connection,
        Payload::FeedGap(_) => EventKind::FeedGap,
        Payload::Warning(_) => EventKind::Warning,
        Payload::ConfigReloaded(_) => EventKind::ConfigReloaded,
    }
}

/// Where a publisher waits for its sequence number (or the store error).
type SeqReply = Option<oneshot::Sender<Result<u64, String>>>;

/// A draft built by the bus when it publishes it (see [`EventsHandle::emit_with`]).
type MakeDraft = Box<dyn FnOnce() -> Draft + Send>;

enum Request {
    Publish {
        draft: Box<Draft>,
        reply: SeqReply,
    },
    PublishWith {
        make: MakeDraft,
    },
    GoLive {
        next: u64,
        filter: Filter,
        tx: mpsc::Sender<StreamItem>,
        reply: oneshot::Sender<bool>,
    },
    Bounds {
        reply: oneshot::Sender<(u64, u64)>,
    },
    Stamp {
        draft: Box<Draft>,
        reply: oneshot::Sender<u64>,
    },
    Retention {
        max_events: crate::config::Positive,
        max_age: crate::config::DurationSpec,
    },
}

/// The way into the event bus.
#[derive(Clone)]
pub struct EventsHandle {
    tx: mpsc::Sender<Request>,
    log: EventLog,
    buffer: usize,
    stop: CancellationToken,
}

impl EventsHandle {
    /// Publishes an event; returns its sequence number once it is in the log.
    pub async fn publish(&self, draft: Draft) -> Result<u64, BusError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Publish {
                draft: Box::new(draft),
                reply: Some(reply),
            })
            .await
            .map_err(|_| BusError::Stopped)?;
        rx.await.map_err(|_| BusError::Stopped)?.map_err(|detail| {
            BusError::Store(StoreError::Corrupt {
                tree: "events",
                detail,
            })
        })
    }

    /// Publishes and returns the sequence number as soon as it is assigned,
    /// without waiting for the log commit (for callers that only need to
    /// refer to the event, like a bot's history line).
    pub async fn stamp(&self, draft: Draft) -> Result<u64, BusError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Stamp {
                draft: Box::new(draft),
                reply,
            })
            .await
            .map_err(|_| BusError::Stopped)?;
        rx.await.map_err(|_| BusError::Stopped)
    }

    /// Changes the retention (on a config reload); it applies from the next commit.
    pub async fn set_retention(
        &self,
        max_events: crate::config::Positive,
        max_age: crate::config::DurationSpec,
    ) -> Result<(), BusError> {
        self.tx
            .send(Request::Retention {
                max_events,
                max_age,
            })
            .await
            .map_err(|_| BusError::Stopped)
    }

    /// Publishes without waiting for the sequence number (back-pressure still applies).
    pub async fn emit(&self, draft: Draft) {
        if self
            .tx
            .send(Request::Publish {
                draft: Box::new(draft),
                reply: None,
            })
            .await
            .is_err()
        {
            tracing::debug!("Event dropped: the bus has stopped");
        }
    }

    /// As [`EventsHandle::emit`], with the draft built by the bus, in its
    /// turn: for events of a bot's tick, whose text (decimals, ids) is then
    /// formatted off the path from a market update to the bot's order.
    pub async fn emit_with(&self, make: impl FnOnce() -> Draft + Send + 'static) {
        if self
            .tx
            .send(Request::PublishWith {
                make: Box::new(make),
            })
            .await
            .is_err()
        {
            tracing::debug!("Event dropped: the bus has stopped");
        }
    }

    /// Oldest and newest sequence numbers in the log; `(0, 0)` when empty.
    pub async fn bounds(&self) -> Result<(u64, u64), BusError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Bounds { reply })
            .await
            .map_err(|_| BusError::Stopped)?;
        rx.await.map_err(|_| BusError::Stopped)
    }

    /// Starts a subscription: replays from `from` (inclusive; `Some(0)` means
    /// the oldest kept, `None` means live only), then streams live events.
    /// With `stop_at_head`, the stream ends after the event that was the head
    /// at the time of the call instead of going live.
    pub async fn subscribe(
        &self,
        from: Option<u64>,
        filter: Filter,
        stop_at_head: bool,
    ) -> Result<mpsc::Receiver<StreamItem>, Status> {
        let (tail, head) = self
            .bounds()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let start = match from {
            None => head + 1,
            Some(0) => tail.max(1),
            Some(n) if n > head + 1 => {
                return Err(Status::out_of_range(format!(
                    "sequence {n} is in the future; the newest event is {head}: resume with --since {}",
                    head + 1
                )));
            }
            Some(n) if tail > 0 && n < tail => {
                return Err(Status::out_of_range(format!(
                    "events before sequence {tail} were pruned by retention (events.max_events / events.max_age); resume with --since {tail}"
                )));
            }
            Some(n) => n,
        };
        let (tx, rx) = mpsc::channel(self.buffer);
        if from.is_none() && !stop_at_head {
            // Live only: register now, so every event published after this
            // call returns goes through the live (lag-checked) path.
            let (reply, live) = oneshot::channel();
            let go_live = Request::GoLive {
                next: start,
                filter: filter.clone(),
                tx: tx.clone(),
                reply,
            };
            self.tx
                .send(go_live)
                .await
                .map_err(|_| shutting_down(start))?;
            if live.await.map_err(|_| shutting_down(start))? {
                return Ok(rx);
            }
        }
        let handle = self.clone();
        let end = stop_at_head.then_some(head);
        tokio::spawn(async move { handle.replay_then_go_live(start, filter, tx, end).await });
        Ok(rx)
    }

    async fn replay_then_go_live(
        self,
        mut cursor: u64,
        filter: Filter,
        tx: mpsc::Sender<StreamItem>,
        end: Option<u64>,
    ) {
        const CHUNK: usize = 512;
        loop {
            if end.is_some_and(|end| cursor > end) {
                return;
            }
            let log = self.log.clone();
            let read = tokio::task::spawn_blocking(move || log.read_from(cursor, CHUNK));
            let chunk = match read.await {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => {
                    let _ = tx
                        .send(Err(Status::internal(format!(
                            "cannot read the event log: {e}"
                        ))))
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::internal(format!(
                            "event log reader failed: {e}"
                        ))))
                        .await;
                    return;
                }
            };
            if chunk.is_empty() {
                let (reply, rx) = oneshot::channel();
                let go_live = Request::GoLive {
                    next: cursor,
                    filter: filter.clone(),
                    tx: tx.clone(),
                    reply,
                };
                if self.tx.send(go_live).await.is_err() {
                    let _ = tx.send(Err(shutting_down(cursor))).await;
                    return;
                }
                match rx.await {
                    Ok(true) => return,
                    Ok(false) => continue, // events arrived meanwhile: read them first
                    Err(_) => {
                        let _ = tx.send(Err(shutting_down(cursor))).await;
                        return;
                    }
                }
            }
            for (seq, bytes) in chunk {
                if end.is_some_and(|end| seq > end) {
                    return;
                }
                if seq != cursor {
                    let _ = tx
                        .send(Err(Status::out_of_range(format!(
                            "events {cursor}..{} were pruned while being replayed; resume with --since {seq}",
                            seq - 1
                        ))))
                        .await;
                    return;
                }
                cursor = seq + 1;
                let event = match pb::Event::decode(bytes.as_ref()) {
                    Ok(event) => event,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "event {seq} is unreadable: {e}"
                            ))))
                            .await;
                        return;
                    }
                };
                if !filter.matches(&event) {
                    continue;
                }
                tokio::select! {
                    biased;
                    () = self.stop.cancelled() => {
                        let _ = tx.try_send(Err(shutting_down(seq)));
                        return;
                    }
                    sent = tx.send(Ok(event)) => if sent.is_err() { return },
                }
            }
        }
    }
}

fn shutting_down(resume: u64) -> Status {
    Status::unavailable(format!(
        "daemon shutting down; resume from sequence {resume}"
    ))
}

struct Subscriber {
    filter: Filter,
    tx: mpsc::Sender<StreamItem>,
}

/// The bus actor's state.
pub struct EventBus {
    rx: mpsc::Receiver<Request>,
    log: EventLog,
    config: EventsConfig,
    clock: Arc<dyn Clock>,
    head: u64,
    tail: u64,
    subscribers: Vec<Subscriber>,
    last_age_prune: Option<Instant>,
}

impl EventBus {
    /// Creates the bus over `log`, resuming the sequence where the log ends.
    pub fn new(
        log: EventLog,
        config: EventsConfig,
        clock: Arc<dyn Clock>,
        stop: CancellationToken,
    ) -> Result<(Self, EventsHandle), StoreError> {
        let (tail, head) = log.bounds()?.unwrap_or((0, 0));
        let (tx, rx) = mpsc::channel(1024);
        let buffer = usize::try_from(config.subscriber_buffer.0)
            .unwrap_or(usize::MAX)
            .max(2);
        let handle = EventsHandle {
            tx,
            log: log.clone(),
            buffer,
            stop,
        };
        let bus = Self {
            rx,
            log,
            config,
            clock,
            head,
            tail,
            subscribers: Vec::new(),
            last_age_prune: None,
        };
        Ok((bus, handle))
    }

    /// Runs until `stop` is cancelled or every handle is dropped. Publishes
    /// already queued at that moment are still committed; live subscribers
    /// are then told to resume from the next sequence.
    pub async fn run(mut self, stop: CancellationToken) {
        self.prune();
        let mut batch: Vec<Request> = Vec::with_capacity(256);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                n = self.rx.recv_many(&mut batch, 256) => {
                    if n == 0 { break }
                    self.handle(&mut batch).await;
                }
            }
        }
        self.rx.close();
        while self.rx.recv_many(&mut batch, 256).await > 0 {
            self.handle(&mut batch).await;
        }
        let resume = self.head + 1;
        for sub in self.subscribers.drain(..) {
            let _ = sub.tx.try_send(Err(shutting_down(resume)));
        }
        if let Err(e) = self.log.flush().await {
            tracing::error!(error = %e, "Cannot flush the event log");
        }
    }

    async fn handle(&mut self, batch: &mut Vec<Request>) {
        let mut pending: Vec<(pb::Event, SeqReply)> = Vec::new();
        for req in batch.drain(..) {
            match req {
                Request::Publish { draft, reply } => {
                    let event = self.draft_event(*draft, pending.len());
                    pending.push((event, reply));
                }
                Request::PublishWith { make } => {
                    let event = self.draft_event(make(), pending.len());
                    pending.push((event, None));
                }
                Request::Retention {
                    max_events,
                    max_age,
                } => {
                    self.config.max_events = max_events;
                    self.config.max_age = max_age;
                    // Let the age rule apply at once rather than within the minute.
                    self.last_age_prune = None;
                    self.prune();
                }
                Request::Stamp { draft, reply } => {
                    let event = self.draft_event(*draft, pending.len());
                    let _ = reply.send(event.seq);
                    pending.push((event, None));
                }
                Request::GoLive {
                    next,
                    filter,
                    tx,
                    reply,
                } => {
                    self.commit(&mut pending).await;
                    let live = next == self.head + 1;
                    if live {
                        self.subscribers.push(Subscriber { filter, tx });
                    }
                    let _ = reply.send(live);
                }
                Request::Bounds { reply } => {
                    self.commit(&mut pending).await;
                    let _ = reply.send((self.tail, self.head));
                }
            }
        }
        self.commit(&mut pending).await;
    }

    /// The event a draft becomes, numbered after the `pending` ones.
    fn draft_event(&self, draft: Draft, pending: usize) -> pb::Event {
        pb::Event {
            seq: self.head + 1 + pending as u64,
            time: Some(to_timestamp(self.clock.now())),
            bot_id: draft.bot_id,
            product_id: draft.product_id,
            payload: Some(draft.payload),
        }
    }

    async fn commit(&mut self, pending: &mut Vec<(pb::Event, SeqReply)>) {
        if pending.is_empty() {
            return;
        }
        let encoded: Vec<(u64, Vec<u8>)> = pending
            .iter()
            .map(|(e, _)| (e.seq, e.encode_to_vec()))
            .collect();
        let mut result = self.log.append(&encoded);
        if result.is_ok() && self.config.fsync {
            result = self.log.flush().await;
        }
        if let Err(e) = result {
            // Nothing was numbered publicly: the same sequence numbers are
            // handed out again to the next batch, so the log stays gap-free.
            tracing::error!(error = %e, "Cannot append to the event log; events dropped");
            for (_, reply) in pending.drain(..) {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            return;
        }
        for (event, reply) in pending.drain(..) {
            self.head = event.seq;
            if self.tail == 0 {
                self.tail = event.seq;
            }
            self.fan_out(&event);
            if let Some(reply) = reply {
                let _ = reply.send(Ok(event.seq));
            }
        }
        self.prune();
    }

    fn fan_out(&mut self, event: &pb::Event) {
        self.subscribers.retain(|sub| {
            if !sub.filter.matches(event) {
                return !sub.tx.is_closed();
            }
            if sub.tx.capacity() > 1 {
                return sub.tx.try_send(Ok(event.clone())).is_ok();
            }
            // The last slot is kept for the reason, so the client learns why its stream ended.
            let lagged =
                Status::resource_exhausted(format!("lagged; resume from sequence {}", event.seq));
            let _ = sub.tx.try_send(Err(lagged));
            false
        });
    }

    fn prune(&mut self) {
        if self.head == 0 {
            return;
        }
        let max = self.config.max_events.0;
        let mut below = self.tail;
        if self.head - self.tail + 1 > max {
            below = self.head - max + 1;
        }
        let age_due = self
            .last_age_prune
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if age_due {
            self.last_age_prune = Some(Instant::now());
            below = below.max(self.first_young(below));
        }
        if below > self.tail {
            match self.log.prune_below(below) {
                Ok(_) => self.tail = below,
                Err(e) => tracing::warn!(error = %e, "Cannot prune the event log"),
            }
        }
    }

    /// The first sequence at or after `from` that is younger than `max_age`.
    fn first_young(&self, from: u64) -> u64 {
        let max_age = i64::try_from(self.config.max_age.0.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = self.clock.now().saturating_sub(max_age);
        let mut cursor = from;
        loop {
            let Ok(chunk) = self.log.read_from(cursor, 1024) else {
                return from;
            };
            if chunk.is_empty() {
                return cursor;
            }
            for (seq, bytes) in chunk {
                let time = pb::Event::decode(bytes.as_ref()).ok().and_then(|e| e.time);
                let nanos = time.map_or(i64::MIN, |t| {
                    t.seconds
                        .saturating_mul(1_000_000_000)
                        .saturating_add(i64::from(t.nanos))
                });
                if nanos >= cutoff {
                    return seq;
                }
                cursor = seq + 1;
            }
            if cursor > self.head {
                // Keep the newest event so the head survives a restart.
                return self.head;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::ManualClock, config::Positive, store::Store};

    fn warning(n: u64) -> Draft {
        Draft::new(Payload::Warning(pb::Warning {
            source: "test".into(),
            message: n.to_string(),
        }))
    }

    fn config(max_events: u64) -> EventsConfig {
        EventsConfig {
            max_events: Positive(max_events),
            subscriber_buffer: Positive(8),
            fsync: false,
            ..EventsConfig::default()
        }
    }

    fn start(
        store: &Store,
        cfg: EventsConfig,
        clock: Arc<dyn Clock>,
    ) -> (EventsHandle, CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let (bus, handle) = EventBus::new(store.events(), cfg, clock, stop.clone()).unwrap();
        let task = tokio::spawn(bus.run(stop.clone()));
        (handle, stop, task)
    }

    #[tokio::test]
    async fn sequence_is_gap_free_and_continues_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let (h, stop, task) = start(&store, config(100), clock.clone());
        for n in 1..=5 {
            assert_eq!(h.publish(warning(n)).await.unwrap(), n);
        }
        stop.cancel();
        task.await.unwrap();
        let (h, _stop, _task) = start(&store, config(100), clock);
        assert_eq!(h.publish(warning(6)).await.unwrap(), 6);
        assert_eq!(h.bounds().await.unwrap(), (1, 6));
    }

    #[tokio::test]
    async fn max_events_prunes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (h, _stop, _task) = start(&store, config(10), Arc::new(ManualClock::new(0)));
        for n in 1..=25 {
            h.publish(warning(n)).await.unwrap();
        }
        assert_eq!(h.bounds().await.unwrap(), (16, 25));
        let err = h
            .subscribe(Some(3), Filter::default(), false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        assert!(err.message().contains("--since 16"), "{}", err.message());
    }

    #[tokio::test]
    async fn max_age_prunes_old_events_but_keeps_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let (h, stop, task) = start(&store, config(100), clock.clone());
        for n in 1..=3 {
            h.publish(warning(n)).await.unwrap();
        }
        stop.cancel();
        task.await.unwrap();
        clock.set(40 * 86_400 * 1_000_000_000);
        let (h, _stop, _task) = start(&store, config(100), clock);
        assert_eq!(h.bounds().await.unwrap(), (3, 3));
        assert_eq!(h.publish(warning(4)).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn replay_then_live_has_no_gap_or_duplicate_under_concurrent_publishing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut cfg = config(1_000_000);
        cfg.subscriber_buffer = Positive(100_000);
        let (h, _stop, _task) = start(&store, cfg, Arc::new(ManualClock::new(0)));
        for n in 1..=2000 {
            h.emit(warning(n)).await;
        }
        let publisher = {
            let h = h.clone();
            tokio::spawn(async move {
                for n in 2001..=4000 {
                    h.emit(warning(n)).await;
                }
            })
        };
        let mut rx = h
            .subscribe(Some(1), Filter::default(), false)
            .await
            .unwrap();
        publisher.await.unwrap();
        for want in 1..=4000u64 {
            let got = rx.recv().await.unwrap().unwrap();
            assert_eq!(got.seq, want);
        }
    }

    #[tokio::test]
    async fn drafts_built_by_the_bus_keep_their_place_in_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (h, _stop, _task) = start(&store, config(1000), Arc::new(ManualClock::new(0)));
        let mut rx = h.subscribe(None, Filter::default(), false).await.unwrap();
        for n in 1..=6u64 {
            if n % 2 == 0 {
                h.emit_with(move || warning(n)).await;
            } else {
                h.emit(warning(n)).await;
            }
        }
        for want in 1..=6u64 {
            let got = rx.recv().await.unwrap().unwrap();
            let Some(pb::event::Payload::Warning(w)) = got.payload else {
                panic!("{got:?}")
            };
            assert_eq!((got.seq, w.message), (want, want.to_string()));
        }
    }

    #[tokio::test]
    async fn slow_live_subscriber_is_dropped_with_a_resume_point() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (h, _stop, _task) = start(&store, config(1000), Arc::new(ManualClock::new(0)));
        let mut rx = h.subscribe(None, Filter::default(), false).await.unwrap();
        for n in 1..=20 {
            h.publish(warning(n)).await.unwrap();
        }
        let mut seqs = Vec::new();
        let status = loop {
            match rx.recv().await.unwrap() {
                Ok(e) => seqs.push(e.seq),
                Err(s) => break s,
            }
        };
        assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "lagged; resume from sequence 8");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn filters_select_by_bot_product_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (h, _stop, _task) = start(&store, config(1000), Arc::new(ManualClock::new(0)));
        let mut d = warning(1);
        d.bot_id = "b1".into();
        d.product_id = "BTC-USD".into();
        h.publish(d).await.unwrap();
        h.publish(warning(2)).await.unwrap();
        h.publish(Draft::new(Payload::DaemonStopping(pb::DaemonStopping {
            reason: "x".into(),
        })))
        .await
        .unwrap();
        let collect = |f: Filter| {
            let h = h.clone();
            async move {
                let mut rx = h.subscribe(Some(0), f, true).await.unwrap();
                let mut seqs = Vec::new();
                while let Some(e) = rx.recv().await {
                    seqs.push(e.unwrap().seq);
                }
                seqs
            }
        };
        assert_eq!(
            collect(Filter::new(vec!["b1".into()], vec![], vec![])).await,
            vec![1]
        );
        assert_eq!(
            collect(Filter::new(vec![], vec!["BTC-USD".into()], vec![])).await,
            vec![1]
        );
        assert_eq!(
            collect(Filter::new(vec![], vec![], vec![EventKind::Warning as i32])).await,
            vec![1, 2]
        );
        assert_eq!(collect(Filter::default()).await, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn future_cursor_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (h, _stop, _task) = start(&store, config(1000), Arc::new(ManualClock::new(0)));
        h.publish(warning(1)).await.unwrap();
        assert!(h.subscribe(Some(2), Filter::default(), false).await.is_ok());
        let err = h
            .subscribe(Some(9), Filter::default(), false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
    }
}
