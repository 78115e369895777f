//! Events on the objects a controller manages: every blocked or notable operation is reported
//! where `kubectl describe` shows it, not only in a log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// How many (object, type, reason, action) keys [`Events`] remembers before it starts afresh.
const MAX_KEYS: usize = 10_000;

/// What an Event is counted under: the object's UID, type, reason and action.
type Key = (String, String, String, String);

/// Publishes Events as one controller.
///
/// kube's [`Recorder`] counts an Event again (its `series`) when the object, type, reason and
/// action repeat, keeping the first note: a hold whose message changes (a ConfigMap first
/// missing, then lacking a key) would never show the new message. So each such key gets its own
/// recorder, replaced whenever the note changes: the same note is counted, a new one is a new
/// Event.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    recorders: Arc<Mutex<HashMap<Key, (String, Recorder)>>>,
}

impl Events {
    /// A publisher that signs Events with the controller's name.
    pub fn new(client: kube::Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            client,
            reporter,
            recorders: Arc::default(),
        }
    }

    /// The recorder that counts `note` under `key`: the one that counted it last, else a new one.
    fn recorder_for(&self, key: Key, note: &str) -> Recorder {
        let mut recorders = self
            .recorders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((last, recorder)) = recorders.get(&key)
            && last == note
        {
            return recorder.clone();
        }
        if recorders.len() >= MAX_KEYS {
            recorders.clear();
        }
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        recorders.insert(key, (note.to_string(), recorder.clone()));
        recorder
    }

    /// A normal Event: something was done.
    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(object, EventType::Normal, reason, action, note)
            .await;
    }

    /// A warning Event: something is blocked or failed.
    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(object, EventType::Warning, reason, action, note)
            .await;
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let reference = object.object_ref(&());
        let key = (
            reference.uid.clone().unwrap_or_default(),
            format!("{type_:?}"),
            reason.to_string(),
            action.to_string(),
        );
        let recorder = self.recorder_for(key, &note);
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        // An Event that cannot be written must not fail the reconcile that reports it.
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason, "could not publish an Event");
        }
    }
}
