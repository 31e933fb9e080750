//! The control channel, read where its bytes arrive: in the SSH session's own
//! task, by the connection's [`Handler`](super::handler::SshHandler).
//!
//! Answers to one-shot requests go straight to their waiters from here (no
//! hop through the connection's task, which is most of a fan-out's cost per
//! agent); everything else (hello, heartbeats, pushes, bad frames, the end
//! of the channel) is queued in order for the connection's task in
//! [`super::session`]. The channel's own read half is dropped: all its bytes
//! come through here.
//!
//! The queue is bounded ([`INBOX_LEN`]): a task that falls behind holds up
//! the session's reads, as a full channel buffer did before. It allocates
//! nothing until used, because every idle agent holds one.

use crate::limits::INBOX_LEN;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nextdeploy_shared::docker::HealthSnapshot;
use nextdeploy_shared::frame::{Decoder, FrameError};
use nextdeploy_shared::protocol::{Reply, ReplyType};
use nextdeploy_shared::time::now_unix;
use russh::ChannelId;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::agents::AgentConn;

/// What the connection's task learns from its control channel.
#[derive(Debug)]
pub enum Event {
    /// A frame that is not an answer to a waiting request.
    Reply(Box<Reply>),
    /// A health snapshot, read straight into its type.
    Health(Box<HealthSnapshot>),
    /// A frame that could not be read.
    Bad(Box<FrameError>),
    /// The agent sent EOF or closed the channel.
    Closed,
}

/// A control frame, read.
enum Frame {
    Reply(Box<Reply>),
    Health(Box<HealthSnapshot>),
}

/// A frame's type and its `data` left as text.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type")]
    kind: ReplyType,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// A health frame read in one pass: agents write `type` before `data`, so
/// once the type says health, `data` is read straight into a snapshot (no
/// scan of it as a [`RawValue`] first). `None` for anything else, or a
/// frame with `data` first: the caller reads those as before.
struct OnePass(Option<HealthSnapshot>);

impl<'de> Deserialize<'de> for OnePass {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OnePassVisitor)
    }
}

struct OnePassVisitor;

impl<'de> serde::de::Visitor<'de> for OnePassVisitor {
    type Value = OnePass;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a control frame")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OnePass, A::Error> {
        use serde::de::IgnoredAny;
        let mut health = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => {
                    if map.next_value::<ReplyType>()? != ReplyType::Health {
                        return Ok(OnePass(None));
                    }
                    health = true;
                }
                "data" if health => return Ok(OnePass(Some(map.next_value()?))),
                "data" => return Ok(OnePass(None)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OnePass(None))
    }
}

/// Read a control frame: a health snapshot (most of what agents send)
/// straight into its type, without the [`serde_json::Value`] tree a
/// [`Reply`]'s `data` is (a map and a string per field: most of the hub's
/// CPU for 20-container snapshots went to that tree's allocations); any
/// other frame, or a snapshot that does not read, as a [`Reply`].
fn read_frame(payload: &[u8]) -> Result<Frame, FrameError> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    if let Ok(OnePass(Some(snap))) = OnePass::deserialize(&mut de) {
        if de.end().is_ok() {
            return Ok(Frame::Health(Box::new(snap)));
        }
    }
    if let Ok(Head {
        kind: ReplyType::Health,
        data: Some(data),
    }) = serde_json::from_slice::<Head<'_>>(payload)
    {
        if let Ok(snap) = serde_json::from_str::<HealthSnapshot>(data.get()) {
            return Ok(Frame::Health(Box::new(snap)));
        }
    }
    Ok(Frame::Reply(Box::new(serde_json::from_slice(payload)?)))
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    /// The writer is gone (the session ended).
    done: bool,
    /// The reader is gone (the connection's task ended): events are dropped.
    unread: bool,
}

/// The queue between the session's reader and the connection's task.
#[derive(Default)]
pub struct Inbox {
    queue: Mutex<Queue>,
    ready: Notify,
    room: Notify,
}

impl Inbox {
    /// A queue and its reader.
    pub fn new() -> (Arc<Inbox>, Reader) {
        let inbox = Arc::new(Inbox::default());
        (inbox.clone(), Reader(inbox))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        crate::sync::lock_or_recover(&self.queue)
    }

    /// The next event; `None` once the writer is gone and all is taken.
    async fn next(&self) -> Option<Event> {
        loop {
            let ready = self.ready.notified();
            {
                let mut q = self.lock();
                if let Some(e) = q.events.pop_front() {
                    drop(q);
                    self.room.notify_one();
                    return Some(e);
                }
                if q.done {
                    return None;
                }
            }
            ready.await;
        }
    }

    async fn push(&self, event: Event) {
        let mut event = Some(event);
        loop {
            let room = self.room.notified();
            {
                let mut q = self.lock();
                if q.unread {
                    return;
                }
                if q.events.len() < INBOX_LEN {
                    q.events.extend(event.take());
                    drop(q);
                    self.ready.notify_one();
                    return;
                }
            }
            room.await;
        }
    }

    fn finish(&self) {
        self.lock().done = true;
        self.ready.notify_one();
    }
}

/// The connection task's end of an [`Inbox`]. Dropped, it lets the writer
/// drop what comes after, so a session never waits on a task that is gone.
pub struct Reader(Arc<Inbox>);

impl Reader {
    /// The next event; `None` once the session's reader is gone and all is taken.
    pub async fn next(&self) -> Option<Event> {
        self.0.next().await
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.unread = true;
        q.events.clear();
        drop(q);
        self.0.room.notify_one();
    }
}

/// Where the connection's task hands the tap to the handler: set once,
/// before the control request is written, taken by the handler's next read.
pub type TapSlot = Arc<Mutex<Option<Tap>>>;

/// The reader of one connection's control channel.
pub struct Tap {
    channel: ChannelId,
    decoder: Decoder,
    inbox: Arc<Inbox>,
    /// Set by the connection's task once the agent is registered: from then
    /// on answers are delivered here and `last_seen` kept here.
    conn: Arc<OnceLock<Weak<AgentConn>>>,
    /// An oversized frame put the stream out of step: nothing more is read.
    broken: bool,
}

impl Tap {
    /// A reader of `channel` queueing into `inbox`.
    pub fn new(
        channel: ChannelId,
        inbox: Arc<Inbox>,
        conn: Arc<OnceLock<Weak<AgentConn>>>,
    ) -> Self {
        Tap {
            channel,
            decoder: Decoder::new(),
            inbox,
            conn,
            broken: false,
        }
    }

    /// Whether `channel` is the one read here.
    pub fn reads(&self, channel: ChannelId) -> bool {
        self.channel == channel
    }

    /// Bytes of the control channel.
    pub async fn data(&mut self, data: &[u8]) {
        if self.broken {
            return;
        }
        let conn = self.conn.get().and_then(Weak::upgrade);
        if let Some(c) = &conn {
            c.last_seen
                .store(now_unix(), std::sync::atomic::Ordering::Relaxed);
        }
        self.decoder.feed(data);
        loop {
            match self
                .decoder
                .next_frame()
                .and_then(|f| f.map(read_frame).transpose())
            {
                Ok(Some(Frame::Health(snap))) => {
                    Box::pin(self.inbox.push(Event::Health(snap))).await;
                }
                Ok(Some(Frame::Reply(reply))) => {
                    let rest = match &conn {
                        Some(c) => c.control.deliver(*reply),
                        None => Some(*reply),
                    };
                    if let Some(r) = rest {
                        Box::pin(self.inbox.push(Event::Reply(Box::new(r)))).await;
                    }
                }
                Ok(None) => {
                    // Between frames an idle agent's reader holds no buffer.
                    self.decoder.release();
                    return;
                }
                Err(e) => {
                    self.broken = matches!(e, FrameError::TooLarge(_));
                    Box::pin(self.inbox.push(Event::Bad(Box::new(e)))).await;
                    if self.broken {
                        return;
                    }
                }
            }
        }
    }

    /// The agent ended the channel.
    pub async fn closed(&mut self) {
        if !self.broken {
            self.broken = true;
            Box::pin(self.inbox.push(Event::Closed)).await;
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.inbox.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_frames_read_in_one_pass_or_as_before() {
        let snap = r#"{"at_s":1800000000,"docker_available":true,"sweep_ms":2,"containers":[{"id":"a","name":"web","image":"app:1","state":"running","restarts":0}]}"#;
        let health = |f: &str| match read_frame(f.as_bytes()) {
            Ok(Frame::Health(s)) => Some(s.containers[0].name.clone()),
            _ => None,
        };
        // type first (as agents write it), data first, a field after data.
        let first = format!(r#"{{"id":null,"type":"health","data":{snap}}}"#);
        let later = format!(r#"{{"data":{snap},"type":"health","id":null}}"#);
        let after = format!(r#"{{"type":"health","data":{snap},"server":"x"}}"#);
        for f in [&first, &later, &after] {
            assert_eq!(health(f).as_deref(), Some("web"), "{f}");
        }
        // Trailing bytes are not a frame; another type is a reply.
        assert!(read_frame(format!("{first} x").as_bytes()).is_err());
        let result = format!(r#"{{"id":3,"type":"result","data":{snap}}}"#);
        assert!(matches!(read_frame(result.as_bytes()), Ok(Frame::Reply(r)) if r.id == Some(3)));
    }

    #[tokio::test]
    async fn events_keep_their_order_and_the_end_follows_the_last() {
        let (inbox, reader) = Inbox::new();
        let writer = {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                for i in 0..(INBOX_LEN * 4) as u64 {
                    inbox
                        .push(Event::Reply(Box::new(Reply::end(Some(i)))))
                        .await;
                }
                inbox.finish();
            })
        };
        let mut seen = Vec::new();
        while let Some(e) = tokio::time::timeout(std::time::Duration::from_secs(5), reader.next())
            .await
            .expect("the queue stalled")
        {
            match e {
                Event::Reply(r) => seen.push(r.id.unwrap()),
                other => panic!("unexpected {other:?}"),
            }
            // The writer is held up while the queue is full, never beyond.
            assert!(inbox.lock().events.len() <= INBOX_LEN);
        }
        writer.await.unwrap();
        assert_eq!(seen, (0..(INBOX_LEN * 4) as u64).collect::<Vec<_>>());
    }

    /// Whether `push` is still waiting after 50 ms.
    async fn waits<F: std::future::Future + Unpin>(push: &mut F) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), push)
            .await
            .is_err()
    }

    /// A queue holding [`INBOX_LEN`] events, and its reader.
    async fn full_inbox() -> (Arc<Inbox>, Reader) {
        let (inbox, reader) = Inbox::new();
        for i in 0..INBOX_LEN as u64 {
            inbox
                .push(Event::Reply(Box::new(Reply::end(Some(i)))))
                .await;
        }
        (inbox, reader)
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_writer_until_room() {
        let (inbox, reader) = full_inbox().await;
        let extra = inbox.push(Event::Closed);
        tokio::pin!(extra);
        assert!(waits(&mut extra).await, "no room: the push waits");
        assert!(matches!(reader.next().await, Some(Event::Reply(_))));
        tokio::time::timeout(std::time::Duration::from_secs(5), &mut extra)
            .await
            .expect("room was made");
        assert_eq!(inbox.lock().events.len(), INBOX_LEN);
    }

    #[tokio::test]
    async fn a_writer_waiting_on_a_full_queue_is_released_when_the_reader_goes() {
        let (inbox, reader) = full_inbox().await;
        let extra = inbox.push(Event::Closed);
        tokio::pin!(extra);
        assert!(waits(&mut extra).await, "no room: the push waits");
        drop(reader);
        tokio::time::timeout(std::time::Duration::from_secs(5), &mut extra)
            .await
            .expect("a push after the reader left must not wait");
        // And later pushes return at once, keeping nothing.
        inbox.push(Event::Closed).await;
        assert!(inbox.lock().events.is_empty());
    }
}
