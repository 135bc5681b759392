//! The dispatcher: routes alerts through the routing tree into aggregation groups and decides,
//! stepped by a clock the caller passes in, which notifications are due (group_wait,
//! group_interval, repeat_interval), leaving out silenced and inhibited alerts and reporting
//! transitions as history events. No I/O: the caller stores `state()` and the notifications.
//!
//! Decisions where Alertmanager leaves room:
//! - The dispatcher emits resolved alerts as if every integration had `send_resolved: true`;
//!   delivery narrows a notification per integration with `for_integration`.
//! - A group only reports the resolution of alerts it announced as firing.
//! - An alert that disappears from the input while firing counts as resolved at that step.
//! - Receivers with an `alertmanager` integration are not grouped: all their alerts go out on
//!   every change, and again every resend delay (resolved ones while the input keeps them).

use super::config::{NotifyConfig, NotifyConfigError};
use super::inhibit::{Candidate, Inhibitor};
use super::message::{Notification, NotifiedAlert, Status, KV};
use super::route::Route;
use super::silence::{muting, Silence};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An alert the rule manager holds: firing, or resolved and still kept.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSnapshot {
    pub labels: KV,
    pub annotations: KV,
    pub starts_at_ms: i64,
    /// `Some` = resolved at that time.
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Fired,
    Resolved,
    /// Written by delivery, never by the dispatcher.
    Notified,
    Silenced,
    Inhibited,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fired => "fired",
            EventKind::Resolved => "resolved",
            EventKind::Notified => "notified",
            EventKind::Silenced => "silenced",
            EventKind::Inhibited => "inhibited",
        }
    }
}

/// One entry of the alert history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at_ms: i64,
    pub kind: EventKind,
    pub alertname: String,
    pub labels: KV,
    pub fingerprint: String,
    pub receiver: Option<String>,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct StepOutput {
    pub notifications: Vec<Notification>,
    pub events: Vec<HistoryEvent>,
}

/// What must survive a restart for one group: when it was last notified and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: KV,
    pub last_notified_ms: i64,
    /// The alerts of the last notification, with the status they were notified with.
    pub alerts: Vec<NotifiedAlert>,
}

/// The state that changed since the last `take_state_changes`: store `removed` first, then
/// `changed` (a group can be removed and created again in between).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StateChanges {
    pub changed: Vec<GroupState>,
    /// (receiver, group key) of groups that no longer need state.
    pub removed: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Config(#[from] NotifyConfigError),
}

/// The kind of integration whose receivers are fed ungrouped, as Prometheus feeds Alertmanager.
pub const FORWARD_KIND: &str = "alertmanager";
/// `hold_until_ms` of a restored group until the first step sets it.
const RESTORED: i64 = i64::MIN;
/// The group key of a forwarding receiver's single group.
const FORWARD_KEY: &str = "{}:{}";

/// Prometheus's label-set fingerprint (FNV-1a over the sorted names and values), 16 hex digits.
pub fn fingerprint(labels: &KV) -> String {
    const PRIME: u64 = 1_099_511_628_211;
    let mut h: u64 = 14_695_981_039_346_656_037;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// `n` as an integration with `send_resolved` gets it: `None` when nothing is left to send.
pub fn for_integration(n: &Notification, send_resolved: bool) -> Option<Notification> {
    if send_resolved {
        return Some(n.clone());
    }
    let mut out = n.clone();
    out.alerts.retain(|a| a.status == Status::Firing);
    if out.alerts.is_empty() {
        return None;
    }
    out.summarize();
    Some(out)
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    wait_ms: i64,
    interval_ms: i64,
    repeat_ms: i64,
    forward: bool,
}

/// One aggregation group (or a forwarding receiver's single group).
#[derive(Debug)]
struct Group {
    receiver: String,
    key: String,
    labels: KV,
    timing: Timing,
    /// Current members: firing, or resolved and not flushed yet.
    alerts: BTreeMap<String, NotifiedAlert>,
    next_flush_ms: Option<i64>,
    last_notified_ms: Option<i64>,
    /// The alerts of the last notification.
    notified: BTreeMap<String, NotifiedAlert>,
    /// Resolved alerts already flushed, ignored while the input still shows them resolved.
    retired: BTreeSet<String>,
    /// Restored members are not taken as resolved for being absent before this time.
    hold_until_ms: Option<i64>,
    /// Its state changed since the last `take_state_changes`.
    dirty: bool,
}

/// Per-alert memory for history events.
#[derive(Debug, Clone, Default)]
struct Track {
    labels: KV,
    firing: bool,
    silenced: bool,
    inhibited: bool,
    /// Restored as firing: not taken as resolved for being absent before this time.
    hold_until_ms: Option<i64>,
}

/// Why an alert is muted at this step.
#[derive(Debug, Default)]
struct Mute {
    silenced_by: Vec<String>,
    inhibited_by: Option<String>,
}

impl Mute {
    fn muted(&self) -> bool {
        !self.silenced_by.is_empty() || self.inhibited_by.is_some()
    }
}

/// An input alert with its fingerprint.
struct Current<'a> {
    fp: String,
    snap: &'a AlertSnapshot,
}

impl Current<'_> {
    fn firing(&self) -> bool {
        self.snap.ends_at_ms.is_none()
    }

    fn labels(&self) -> &KV {
        &self.snap.labels
    }

    fn status(&self) -> Status {
        if self.firing() {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// Whether `a` already holds this alert as it is now.
    fn same_as(&self, a: &NotifiedAlert) -> bool {
        let s = self.snap;
        a.status == self.status() && a.starts_at_ms == s.starts_at_ms && a.ends_at_ms == s.ends_at_ms && a.annotations == s.annotations
    }

    fn to_notified(&self) -> NotifiedAlert {
        let s = self.snap;
        NotifiedAlert {
            status: self.status(),
            labels: s.labels.clone(),
            annotations: s.annotations.clone(),
            starts_at_ms: s.starts_at_ms,
            ends_at_ms: s.ends_at_ms,
            generator_url: s.generator_url.clone(),
            fingerprint: self.fp.clone(),
        }
    }
}

pub struct Dispatcher {
    root: Route,
    inhibitor: Inhibitor,
    forward: HashSet<String>,
    external_url: String,
    resend_delay_ms: i64,
    restore_grace_ms: i64,
    groups: HashMap<(String, String), Group>,
    tracks: HashMap<String, Track>,
    /// Routing results by fingerprint (they depend on the labels only).
    placements: HashMap<String, Vec<Placement>>,
    /// Groups with state removed since the last `take_state_changes`.
    removed: Vec<(String, String)>,
}

impl Dispatcher {
    /// Validates `cfg` against the receivers (name → integration kinds) and builds the tree,
    /// with the thresholds' cooldown routes added.
    pub fn new(
        cfg: &NotifyConfig,
        receiver_kinds: &BTreeMap<String, Vec<&'static str>>,
        external_url: &str,
    ) -> Result<Dispatcher, DispatchError> {
        let names: BTreeSet<String> = receiver_kinds.keys().cloned().collect();
        cfg.validate(&names)?;
        let route = super::thresholds::with_cooldown_routes(&cfg.route, &cfg.thresholds);
        let forward = receiver_kinds.iter().filter(|(_, k)| k.contains(&FORWARD_KIND)).map(|(n, _)| n.clone()).collect();
        Ok(Dispatcher {
            root: Route::build(&route),
            inhibitor: Inhibitor::new(&cfg.inhibit_rules),
            forward,
            external_url: external_url.to_string(),
            resend_delay_ms: 60_000,
            restore_grace_ms: 11 * 60_000,
            groups: HashMap::default(),
            tracks: HashMap::default(),
            placements: HashMap::default(),
            removed: Vec::new(),
        })
    }

    /// How often forwarding receivers get their active alerts again (Prometheus's
    /// `--rules.alert.resend-delay`, default 1m).
    pub fn set_resend_delay(&mut self, ms: i64) {
        self.resend_delay_ms = ms.max(1);
    }

    /// How long after the first step following `restore` an alert notified as firing before
    /// the restart may be absent from the input (its rule's `for` being restored) before it
    /// counts as resolved; until then it is left out of notifications. Default 11m (Prometheus's
    /// `for-grace-period` of 10m plus an evaluation).
    pub fn set_restore_grace(&mut self, ms: i64) {
        self.restore_grace_ms = ms.max(0);
    }

    /// The resolved routing tree.
    pub fn route(&self) -> &Route {
        &self.root
    }

    /// All alerts currently firing or recently resolved (pending ones are not given), at `now_ms`.
    pub fn step(&mut self, now_ms: i64, alerts: &[AlertSnapshot], silences: &[Silence]) -> StepOutput {
        let current = normalize(alerts);
        let mutes = self.mutes(now_ms, &current, silences);
        let present: HashSet<&str> = current.iter().map(|c| c.fp.as_str()).collect();
        self.start_holds(now_ms);
        let mut out = StepOutput { events: self.track(now_ms, &current, &mutes, &present), ..StepOutput::default() };
        self.assign(now_ms, &current, &present);
        for g in self.groups.values_mut() {
            g.settle(now_ms, &present);
            if g.next_flush_ms.is_some_and(|t| t <= now_ms) {
                out.notifications.extend(g.flush(now_ms, &mutes, &present, &self.external_url));
            }
        }
        let removed = &mut self.removed;
        self.groups.retain(|id, g| {
            let keep = !g.is_idle();
            if !keep && g.last_notified_ms.is_some() {
                removed.push(id.clone());
            }
            keep
        });
        out.notifications.sort_by(|a, b| (&a.receiver, &a.group_key).cmp(&(&b.receiver, &b.group_key)));
        out
    }

    /// The earliest time at which a step could produce something without new input (a group's
    /// flush, or the end of a restore hold); `None` when nothing is scheduled. Until then a step
    /// with the same alerts and silences changes nothing, so the caller may skip it.
    pub fn next_due(&self) -> Option<i64> {
        let flushes = self.groups.values().filter_map(|g| g.next_flush_ms);
        let group_holds = self.groups.values().filter_map(|g| g.hold_until_ms);
        let track_holds = self.tracks.values().filter_map(|t| t.hold_until_ms);
        flushes.chain(group_holds).chain(track_holds).min()
    }

    /// What must survive a restart: every group that has notified.
    pub fn state(&self) -> Vec<GroupState> {
        let mut out: Vec<GroupState> = self.groups.values().filter_map(Group::state).collect();
        out.sort_by(|a, b| (&a.receiver, &a.group_key).cmp(&(&b.receiver, &b.group_key)));
        out
    }

    /// What changed in `state()` since the last call, for storing it incrementally (in the
    /// same transaction as the step's notifications).
    pub fn take_state_changes(&mut self) -> StateChanges {
        let mut changed = Vec::new();
        for g in self.groups.values_mut().filter(|g| g.dirty) {
            g.dirty = false;
            changed.extend(g.state());
        }
        changed.sort_by(|a, b| (&a.receiver, &a.group_key).cmp(&(&b.receiver, &b.group_key)));
        StateChanges { changed, removed: std::mem::take(&mut self.removed) }
    }

    /// Takes back `state()` saved before a restart; groups whose route no longer exists are
    /// dropped (and reported by the next `take_state_changes` as removed). Alerts notified as firing are held for the restore grace.
    pub fn restore(&mut self, state: Vec<GroupState>) {
        self.restore_groups(state, Some(RESTORED));
    }

    /// Takes over from the dispatcher of the previous config (a reload): what was notified,
    /// and what the history already reported.
    pub fn take_over(&mut self, old: Dispatcher) {
        self.restore_groups(old.state(), None);
        self.tracks = old.tracks;
    }

    fn restore_groups(&mut self, state: Vec<GroupState>, hold: Option<i64>) {
        for s in state {
            let Some(timing) = self.timing_for(&s.receiver, &s.group_key) else {
                self.removed.push((s.receiver, s.group_key));
                continue;
            };
            for a in s.alerts.iter().filter(|a| a.status == Status::Firing) {
                let t = Track { labels: a.labels.clone(), firing: true, hold_until_ms: hold, ..Track::default() };
                self.tracks.insert(a.fingerprint.clone(), t);
            }
            let key = (s.receiver.clone(), s.group_key.clone());
            self.groups.insert(key, Group::restored(s, timing, hold));
        }
    }

    /// At the first step after `restore`, the restore grace starts.
    fn start_holds(&mut self, now_ms: i64) {
        let until = Some(now_ms + self.restore_grace_ms);
        let holds = self.groups.values_mut().map(|g| &mut g.hold_until_ms).chain(self.tracks.values_mut().map(|t| &mut t.hold_until_ms));
        for h in holds.filter(|h| **h == Some(RESTORED)) {
            *h = until;
        }
    }

    fn timing_for(&self, receiver: &str, group_key: &str) -> Option<Timing> {
        if self.forward.contains(receiver) {
            return (group_key == FORWARD_KEY).then(|| self.forward_timing());
        }
        let route = self
            .root
            .walk()
            .into_iter()
            .find(|r| r.receiver == receiver && group_key.strip_prefix(&r.id).is_some_and(|rest| rest.starts_with(":{")));
        route.map(timing_of)
    }

    fn forward_timing(&self) -> Timing {
        Timing { wait_ms: 0, interval_ms: 1, repeat_ms: self.resend_delay_ms, forward: true }
    }

    fn mutes(&self, now_ms: i64, current: &[Current], silences: &[Silence]) -> HashMap<String, Mute> {
        let candidates: Vec<Candidate> =
            current.iter().map(|c| Candidate { fingerprint: &c.fp, labels: c.labels(), firing: c.firing() }).collect();
        let inhibited = self.inhibitor.inhibited_by(&candidates);
        let mut out = HashMap::default();
        for (c, by) in current.iter().zip(inhibited) {
            let silenced_by: Vec<String> = muting(silences, c.labels(), now_ms).into_iter().map(str::to_string).collect();
            if !silenced_by.is_empty() || by.is_some() {
                out.insert(c.fp.clone(), Mute { silenced_by, inhibited_by: by });
            }
        }
        out
    }

    /// Fired/Resolved/Silenced/Inhibited events for the alerts whose state changed.
    fn track(&mut self, now_ms: i64, current: &[Current], mutes: &HashMap<String, Mute>, present: &HashSet<&str>) -> Vec<HistoryEvent> {
        let mut events = Vec::new();
        let none = Mute::default();
        for c in current {
            let t = self.tracks.entry(c.fp.clone()).or_insert_with(|| Track { labels: c.labels().clone(), ..Track::default() });
            let m = mutes.get(&c.fp).unwrap_or(&none);
            let mut emit = |kind, detail: String| events.push(event(now_ms, kind, &c.fp, c.labels(), detail));
            if c.firing() != t.firing {
                let kind = if c.firing() { EventKind::Fired } else { EventKind::Resolved };
                emit(kind, String::new());
            }
            let silenced = c.firing() && !m.silenced_by.is_empty();
            if silenced && !t.silenced {
                emit(EventKind::Silenced, format!("silenced by {}", m.silenced_by.join(", ")));
            }
            let inhibited = c.firing() && m.inhibited_by.is_some();
            if inhibited && !t.inhibited {
                emit(EventKind::Inhibited, format!("inhibited by {}", m.inhibited_by.as_deref().unwrap_or("")));
            }
            (t.firing, t.silenced, t.inhibited, t.hold_until_ms) = (c.firing(), silenced, inhibited, None);
        }
        let held = |t: &Track| t.hold_until_ms.is_some_and(|h| now_ms < h);
        for (fp, t) in &self.tracks {
            if t.firing && !present.contains(fp.as_str()) && !held(t) {
                events.push(event(now_ms, EventKind::Resolved, fp, &t.labels, "no longer reported".into()));
            }
        }
        self.tracks.retain(|fp, t| present.contains(fp.as_str()) || held(t));
        events
    }

    /// Offers every alert to the groups of the routes it matches.
    fn assign(&mut self, now_ms: i64, current: &[Current], present: &HashSet<&str>) {
        for c in current {
            if !self.placements.contains_key(&c.fp) {
                let found = self.place(c.labels());
                self.placements.insert(c.fp.clone(), found);
            }
            for p in &self.placements[&c.fp] {
                if let Some(g) = self.groups.get_mut(&p.id) {
                    g.offer(now_ms, c);
                } else if p.timing.forward || c.firing() {
                    let mut g = Group::new(&p.id.0, &p.id.1, p.labels.clone(), p.timing);
                    g.offer(now_ms, c);
                    self.groups.insert(p.id.clone(), g);
                }
            }
        }
        self.placements.retain(|fp, _| present.contains(fp.as_str()));
    }

    /// The groups an alert with `labels` belongs to.
    fn place(&self, labels: &KV) -> Vec<Placement> {
        let place = |route: &Route| {
            if self.forward.contains(&route.receiver) {
                let id = (route.receiver.clone(), FORWARD_KEY.to_string());
                return Placement { id, labels: KV::new(), timing: self.forward_timing() };
            }
            let group_labels = route.group_labels(labels);
            let id = (route.receiver.clone(), route.group_key(&group_labels));
            Placement { id, labels: group_labels, timing: timing_of(route) }
        };
        self.root.matching(labels).into_iter().map(place).collect()
    }
}

/// Where an alert goes: a group's (receiver, group key), labels and timing.
#[derive(Debug)]
struct Placement {
    id: (String, String),
    labels: KV,
    timing: Timing,
}

fn timing_of(r: &Route) -> Timing {
    Timing { wait_ms: r.group_wait_ms, interval_ms: r.group_interval_ms.max(1), repeat_ms: r.repeat_interval_ms, forward: false }
}

fn event(at_ms: i64, kind: EventKind, fp: &str, labels: &KV, detail: String) -> HistoryEvent {
    HistoryEvent {
        at_ms,
        kind,
        alertname: labels.get("alertname").cloned().unwrap_or_default(),
        labels: labels.clone(),
        fingerprint: fp.to_string(),
        receiver: None,
        detail,
    }
}

/// The input with fingerprints, one alert per fingerprint (the last one wins).
fn normalize(alerts: &[AlertSnapshot]) -> Vec<Current<'_>> {
    let by_fp: BTreeMap<String, &AlertSnapshot> = alerts.iter().map(|a| (fingerprint(&a.labels), a)).collect();
    by_fp.into_iter().map(|(fp, snap)| Current { fp, snap }).collect()
}

impl Group {
    fn new(receiver: &str, key: &str, labels: KV, timing: Timing) -> Group {
        Group {
            receiver: receiver.to_string(),
            key: key.to_string(),
            labels,
            timing,
            alerts: BTreeMap::new(),
            next_flush_ms: None,
            last_notified_ms: None,
            notified: BTreeMap::new(),
            retired: BTreeSet::new(),
            hold_until_ms: None,
            dirty: false,
        }
    }

    fn restored(s: GroupState, timing: Timing, hold: Option<i64>) -> Group {
        let mut g = Group::new(&s.receiver, &s.group_key, s.group_labels, timing);
        g.last_notified_ms = Some(s.last_notified_ms);
        for a in s.alerts {
            if a.status == Status::Firing {
                g.alerts.insert(a.fingerprint.clone(), a.clone());
            } else {
                g.retired.insert(a.fingerprint.clone());
            }
            g.notified.insert(a.fingerprint.clone(), a);
        }
        g.hold_until_ms = hold;
        g
    }

    fn notified_firing(&self, fp: &str) -> bool {
        self.notified.get(fp).is_some_and(|a| a.status == Status::Firing)
    }

    fn offer(&mut self, now_ms: i64, c: &Current) {
        if !c.firing() && !self.timing.forward && !self.alerts.contains_key(&c.fp) && !self.notified_firing(&c.fp) {
            self.retired.insert(c.fp.clone());
            return;
        }
        if !c.firing() && self.retired.contains(&c.fp) {
            return;
        }
        self.retired.remove(&c.fp);
        if !self.alerts.get(&c.fp).is_some_and(|a| c.same_as(a)) {
            self.alerts.insert(c.fp.clone(), c.to_notified());
        }
        self.schedule(now_ms);
    }

    /// Schedules the first flush of a group that just got alerts.
    fn schedule(&mut self, now_ms: i64) {
        if self.next_flush_ms.is_none() && !self.alerts.is_empty() {
            let after_last = self.last_notified_ms.map(|t| t + self.timing.interval_ms).unwrap_or(i64::MIN);
            self.next_flush_ms = Some((now_ms + self.timing.wait_ms).max(after_last));
        }
    }

    /// Members missing from the input resolve; retired alerts gone from it are forgotten.
    fn settle(&mut self, now_ms: i64, present: &HashSet<&str>) {
        self.retired.retain(|fp| present.contains(fp.as_str()));
        if self.hold_until_ms.is_some_and(|t| now_ms < t) {
            self.schedule(now_ms);
            return;
        }
        for (fp, a) in self.alerts.iter_mut() {
            if a.status == Status::Firing && !present.contains(fp.as_str()) {
                a.status = Status::Resolved;
                a.ends_at_ms = Some(now_ms);
            }
        }
        self.schedule(now_ms);
    }

    /// Restored members not reported again yet, while the restore grace lasts.
    fn held(&self, now_ms: i64, fp: &str, present: &HashSet<&str>) -> bool {
        self.hold_until_ms.is_some_and(|t| now_ms < t) && !present.contains(fp)
    }

    /// The alerts a notification would carry now.
    fn visible(&self, now_ms: i64, mutes: &HashMap<String, Mute>, present: &HashSet<&str>) -> Vec<&NotifiedAlert> {
        let shown = |fp: &String, a: &NotifiedAlert| {
            let muted = mutes.get(fp).is_some_and(Mute::muted) || self.held(now_ms, fp, present);
            !muted && (a.status == Status::Firing || self.timing.forward || self.notified_firing(fp))
        };
        let mut out: Vec<&NotifiedAlert> = self.alerts.iter().filter(|(fp, a)| shown(fp, a)).map(|(_, a)| a).collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    fn needs_update(&self, now_ms: i64, visible: &[&NotifiedAlert]) -> bool {
        let firing: Vec<&str> = visible.iter().filter(|a| a.status == Status::Firing).map(|a| a.fingerprint.as_str()).collect();
        let Some(last) = self.last_notified_ms else { return !firing.is_empty() };
        let repeat_due = now_ms - last >= self.timing.repeat_ms;
        if self.timing.forward {
            let changed = visible.len() != self.notified.len()
                || visible.iter().any(|a| self.notified.get(&a.fingerprint).is_none_or(|n| n.status != a.status));
            return !visible.is_empty() && (changed || repeat_due);
        }
        if firing.iter().any(|fp| !self.notified_firing(fp)) || visible.iter().any(|a| a.status == Status::Resolved) {
            return true;
        }
        !firing.is_empty() && repeat_due
    }

    fn flush(&mut self, now_ms: i64, mutes: &HashMap<String, Mute>, present: &HashSet<&str>, url: &str) -> Option<Notification> {
        let visible = self.visible(now_ms, mutes, present);
        let sent = self.needs_update(now_ms, &visible).then(|| self.notification(visible.into_iter().cloned().collect(), url));
        if let Some(n) = &sent {
            self.remember(now_ms, &n.alerts, present);
        }
        let forward = self.timing.forward;
        let done: Vec<String> = self
            .alerts
            .iter()
            .filter(|(fp, a)| a.status == Status::Resolved && !(forward && present.contains(fp.as_str())))
            .map(|(fp, _)| fp.clone())
            .collect();
        for fp in done {
            self.alerts.remove(&fp);
            if let Some(n) = self.notified.get_mut(&fp).filter(|n| n.status == Status::Firing) {
                n.status = Status::Resolved;
                self.dirty = true;
            }
            if present.contains(fp.as_str()) {
                self.retired.insert(fp);
            }
        }
        let due = self.next_flush_ms.unwrap_or(now_ms);
        let step = self.timing.interval_ms;
        self.next_flush_ms = (!self.alerts.is_empty()).then_some(due + step * ((now_ms - due) / step + 1));
        sent
    }

    /// Records a sent notification; held members keep their earlier entry.
    fn remember(&mut self, now_ms: i64, sent: &[NotifiedAlert], present: &HashSet<&str>) {
        let mut notified: BTreeMap<String, NotifiedAlert> = sent.iter().map(|a| (a.fingerprint.clone(), a.clone())).collect();
        for (fp, old) in &self.notified {
            if self.held(now_ms, fp, present) && self.alerts.contains_key(fp) {
                notified.entry(fp.clone()).or_insert_with(|| old.clone());
            }
        }
        self.notified = notified;
        self.last_notified_ms = Some(now_ms);
        self.dirty = true;
    }

    fn notification(&self, alerts: Vec<NotifiedAlert>, url: &str) -> Notification {
        let mut n = Notification {
            receiver: self.receiver.clone(),
            status: Status::Firing,
            group_key: self.key.clone(),
            group_labels: self.labels.clone(),
            common_labels: KV::new(),
            common_annotations: KV::new(),
            external_url: url.to_string(),
            alerts,
            truncated_alerts: 0,
        };
        n.summarize();
        n
    }

    /// Nothing left to remember: no members, and nothing announced as firing.
    fn is_idle(&self) -> bool {
        self.alerts.is_empty() && self.notified.values().all(|a| a.status == Status::Resolved) && self.retired.is_empty()
    }

    fn state(&self) -> Option<GroupState> {
        Some(GroupState {
            receiver: self.receiver.clone(),
            group_key: self.key.clone(),
            group_labels: self.labels.clone(),
            last_notified_ms: self.last_notified_ms?,
            alerts: self.notified.values().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matchers;

    const MIN: i64 = 60_000;

    /// A dispatcher driven by a fake clock, with the rule manager's alerts as a map.
    struct Sim {
        d: Dispatcher,
        now: i64,
        alerts: BTreeMap<String, AlertSnapshot>,
        silences: Vec<Silence>,
        sent: Vec<(i64, Notification)>,
        events: Vec<HistoryEvent>,
    }

    fn kinds() -> BTreeMap<String, Vec<&'static str>> {
        let mut k: BTreeMap<String, Vec<&'static str>> =
            ["log", "ops", "pager", "db"].iter().map(|n| (n.to_string(), vec!["webhook"])).collect();
        k.insert("am".into(), vec!["alertmanager"]);
        k
    }

    fn sim(yaml: &str) -> Sim {
        let cfg: NotifyConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let d = Dispatcher::new(&cfg, &kinds(), "http://alerter:9093").unwrap();
        Sim { d, now: 0, alerts: BTreeMap::new(), silences: Vec::new(), sent: Vec::new(), events: Vec::new() }
    }

    fn labels(spec: &str) -> KV {
        spec.split(',').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap()).map(|(k, v)| (k.into(), v.into())).collect()
    }

    impl Sim {
        fn fire(&mut self, spec: &str) {
            let a = AlertSnapshot {
                labels: labels(spec),
                annotations: KV::from([("summary".to_string(), spec.to_string())]),
                starts_at_ms: self.now,
                ends_at_ms: None,
                generator_url: String::new(),
            };
            self.alerts.insert(spec.to_string(), a);
        }
        fn resolve(&mut self, spec: &str) {
            self.alerts.get_mut(spec).unwrap().ends_at_ms = Some(self.now);
        }
        fn forget(&mut self, spec: &str) {
            self.alerts.remove(spec);
        }
        fn silence(&mut self, m: &str, from: i64, to: i64) {
            let matchers = parse_matchers(m).unwrap();
            let id = format!("s{}", self.silences.len());
            self.silences.push(Silence {
                id,
                matchers,
                starts_at_ms: from,
                ends_at_ms: to,
                created_by: String::new(),
                comment: String::new(),
            });
        }
        /// Steps every 10 s until `until` (inclusive); returns what was sent meanwhile.
        fn run(&mut self, until: i64) -> Vec<(i64, Notification)> {
            let start = self.sent.len();
            while self.now <= until {
                let input: Vec<AlertSnapshot> = self.alerts.values().cloned().collect();
                let out = self.d.step(self.now, &input, &self.silences);
                self.sent.extend(out.notifications.into_iter().map(|n| (self.now, n)));
                self.events.extend(out.events);
                self.now += 10_000;
            }
            self.sent[start..].to_vec()
        }
        fn events_of(&self, kind: EventKind) -> Vec<String> {
            self.events.iter().filter(|e| e.kind == kind).map(|e| e.labels.get("instance").cloned().unwrap_or_default()).collect()
        }
    }

    fn times(sent: &[(i64, Notification)]) -> Vec<i64> {
        sent.iter().map(|(t, _)| *t).collect()
    }

    /// `instance:status` of each alert of a notification.
    fn content(n: &Notification) -> Vec<String> {
        n.alerts.iter().map(|a| format!("{}:{}", a.labels.get("instance").map(String::as_str).unwrap_or(""), a.status.as_str())).collect()
    }

    const SIMPLE: &str =
        "route: {receiver: ops, group_by: [alertname], group_wait: 30s, group_interval: 5m, repeat_interval: 30m}\ninhibit_rules: []\n";

    #[test]
    fn fingerprint_is_prometheus_label_set_hash() {
        let l = labels("first_name=electro,occupation=robot,manufacturer=westinghouse");
        assert_eq!(fingerprint(&l), "520aa309145d62f2");
        assert_eq!(fingerprint(&KV::new()), "cbf29ce484222325");
    }

    #[test]
    fn first_notification_waits_group_wait() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        let sent = s.run(MIN);
        assert_eq!(times(&sent), [30_000]);
        let n = &sent[0].1;
        assert_eq!(n.receiver, "ops");
        assert_eq!(n.group_key, r#"{}:{alertname="A"}"#);
        assert_eq!(n.status, Status::Firing);
        assert_eq!(n.external_url, "http://alerter:9093");
        assert_eq!(n.alerts[0].fingerprint, fingerprint(&labels("alertname=A,instance=a")));
        assert_eq!(s.events_of(EventKind::Fired), ["a"]);
    }

    /// Skipping the steps before `next_due` while the input stays the same sends exactly what
    /// stepping every 10 s sends: the service relies on it to keep its per-second tick cheap.
    #[test]
    fn steps_before_next_due_change_nothing() {
        let script = |s: &mut Sim| -> bool {
            match s.now {
                0 => s.fire("alertname=A,instance=a"),
                20_000 => s.fire("alertname=A,instance=b"),
                400_000 => s.resolve("alertname=A,instance=a"),
                700_000 => s.forget("alertname=A,instance=a"),
                900_000 => s.fire("alertname=B,instance=c"),
                2_500_000 => s.resolve("alertname=A,instance=b"),
                _ => return false,
            }
            true
        };
        let run = |lazy: bool| {
            let mut s = sim(SIMPLE);
            let mut out = Vec::new();
            while s.now <= 4_000_000 {
                let changed = script(&mut s);
                if !lazy || changed || s.d.next_due().is_some_and(|t| t <= s.now) {
                    let input: Vec<AlertSnapshot> = s.alerts.values().cloned().collect();
                    let step = s.d.step(s.now, &input, &[]);
                    out.extend(step.notifications.iter().map(|n| (s.now, n.group_key.clone(), content(n))));
                }
                s.now += 10_000;
            }
            out
        };
        let every = run(false);
        assert!(every.len() >= 5, "{every:?}");
        assert_eq!(run(true), every);
    }

    #[test]
    fn changes_wait_for_group_interval() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(40_000);
        s.fire("alertname=A,instance=b");
        let sent = s.run(10 * MIN);
        assert_eq!(times(&sent), [330_000]);
        assert_eq!(content(&sent[0].1), ["a:firing", "b:firing"]);
    }

    #[test]
    fn unchanged_group_repeats_once_per_cooldown() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        let sent = s.run(120 * MIN);
        assert_eq!(times(&sent), [30_000, 30_000 + 30 * MIN, 30_000 + 60 * MIN, 30_000 + 90 * MIN]);
    }

    #[test]
    fn resolution_is_sent_once_then_the_alert_leaves_the_group() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.fire("alertname=A,instance=b");
        s.run(10 * MIN);
        s.resolve("alertname=A,instance=a");
        let sent = s.run(70 * MIN);
        // The resolution at the next tick; b alone is then repeated a cooldown after it.
        assert_eq!(times(&sent), [630_000, 630_000 + 30 * MIN]);
        assert_eq!(content(&sent[0].1), ["a:resolved", "b:firing"]);
        assert_eq!(content(&sent[1].1), ["b:firing"]);
        assert_eq!(s.events_of(EventKind::Resolved), ["a"]);
        let quiet = for_integration(&sent[0].1, false).unwrap();
        assert_eq!(content(&quiet), ["b:firing"]);
    }

    #[test]
    fn all_resolved_group_notifies_resolved_once_and_is_dropped() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(MIN);
        s.resolve("alertname=A,instance=a");
        let sent = s.run(20 * MIN);
        assert_eq!(times(&sent), [330_000]);
        assert_eq!(sent[0].1.status, Status::Resolved);
        assert!(for_integration(&sent[0].1, false).is_none());
        s.forget("alertname=A,instance=a");
        s.run(21 * MIN);
        assert!(s.d.groups.is_empty());
        assert!(s.d.state().is_empty());
    }

    #[test]
    fn alert_missing_from_the_input_resolves() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(MIN);
        s.forget("alertname=A,instance=a");
        let sent = s.run(10 * MIN);
        assert_eq!(times(&sent), [330_000]);
        assert_eq!(content(&sent[0].1), ["a:resolved"]);
        assert_eq!(s.events_of(EventKind::Resolved), ["a"]);
    }

    #[test]
    fn alert_fired_and_resolved_between_flushes_is_not_notified() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(10_000);
        s.resolve("alertname=A,instance=a");
        assert!(s.run(10 * MIN).is_empty());
    }

    const TREE: &str = r#"
route:
  receiver: log
  group_by: [alertname]
  group_wait: 10s
  routes:
  - matchers: ['severity=~"critical|warning"']
    receiver: ops
    continue: true
  - matchers: ['severity="critical"']
    receiver: pager
    group_wait: 1m
  - matchers: ['team="db"']
    receiver: db
    repeat_interval: 15m
inhibit_rules: []
"#;

    #[test]
    fn continue_sends_to_every_matching_route() {
        let mut s = sim(TREE);
        s.fire("alertname=A,severity=critical");
        let sent = s.run(2 * MIN);
        let who: Vec<(i64, &str)> = sent.iter().map(|(t, n)| (*t, n.receiver.as_str())).collect();
        assert_eq!(who, [(10_000, "ops"), (60_000, "pager")]);
        assert_eq!(sent[1].1.group_key, r#"{}/{severity="critical"}:{alertname="A"}"#);
    }

    #[test]
    fn nested_routes_inherit_timing() {
        let mut s = sim(TREE);
        s.fire("alertname=A,team=db");
        let sent = s.run(40 * MIN);
        // group_wait 10s and group_interval 5m from the root, repeat_interval 15m its own.
        assert_eq!(times(&sent), [10_000, 10_000 + 15 * MIN, 10_000 + 30 * MIN]);
        assert!(sent.iter().all(|(_, n)| n.receiver == "db"));
    }

    const INHIBIT: &str = "route: {receiver: ops, group_by: [alertname, instance], group_wait: 30s, group_interval: 5m}\n";

    #[test]
    fn critical_inhibits_warning_of_the_same_instance() {
        let mut s = sim(INHIBIT);
        s.fire("alertname=Disk,instance=a,severity=warning");
        s.fire("alertname=Disk,instance=a,severity=critical");
        s.fire("alertname=Disk,instance=b,severity=warning");
        let sent = s.run(MIN);
        let all: Vec<Vec<String>> = sent.iter().map(|(_, n)| content(n)).collect();
        assert_eq!(all, [vec!["a:firing"], vec!["b:firing"]]);
        assert_eq!(sent[0].1.alerts[0].labels["severity"], "critical");
        assert_eq!(s.events_of(EventKind::Inhibited), ["a"]);
        // The critical one resolves: the warning is no longer inhibited and is announced.
        s.resolve("alertname=Disk,instance=a,severity=critical");
        let sent = s.run(7 * MIN);
        assert_eq!(times(&sent), [330_000]);
        let sev: Vec<(&str, Status)> = sent[0].1.alerts.iter().map(|a| (a.labels["severity"].as_str(), a.status)).collect();
        assert_eq!(sev, [("critical", Status::Resolved), ("warning", Status::Firing)]);
        assert_eq!(s.events_of(EventKind::Inhibited), ["a"]);
    }

    #[test]
    fn warning_first_then_critical_replaces_it() {
        let mut s = sim(INHIBIT);
        s.fire("alertname=Disk,instance=a,severity=warning");
        let sent = s.run(MIN);
        assert_eq!(sent[0].1.alerts[0].labels["severity"], "warning");
        s.fire("alertname=Disk,instance=a,severity=critical");
        let sent = s.run(6 * MIN);
        assert_eq!(times(&sent), [330_000]);
        let sev: Vec<&str> = sent[0].1.alerts.iter().map(|a| a.labels["severity"].as_str()).collect();
        assert_eq!(sev, ["critical"]);
    }

    #[test]
    fn silences_mute_exactly_what_they_match_while_active() {
        let mut s = sim(SIMPLE);
        s.silence("alertname=A,instance=a", 0, 20 * MIN);
        s.fire("alertname=A,instance=a");
        s.fire("alertname=A,instance=b");
        s.fire("alertname=B,instance=a");
        let sent = s.run(10 * MIN);
        let all: Vec<(String, Vec<String>)> = sent.iter().map(|(_, n)| (n.group_key.clone(), content(n))).collect();
        assert_eq!(
            all,
            [
                (r#"{}:{alertname="A"}"#.into(), vec!["b:firing".to_string()]),
                (r#"{}:{alertname="B"}"#.into(), vec!["a:firing".to_string()])
            ]
        );
        assert_eq!(s.events_of(EventKind::Silenced), ["a"]);
        assert_eq!(s.events.iter().find(|e| e.kind == EventKind::Silenced).unwrap().detail, "silenced by s0");
        // When the silence ends, the alert is announced at the group's next tick.
        let sent = s.run(30 * MIN);
        assert_eq!(times(&sent), [20 * MIN + 30_000]);
        assert_eq!(content(&sent[0].1), ["a:firing", "b:firing"]);
        assert_eq!(s.events_of(EventKind::Silenced), ["a"]);
    }

    #[test]
    fn restart_does_not_resend_within_cooldown() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(10 * MIN);
        let saved = serde_json::to_string(&s.d.state()).unwrap();
        // Restart: a new dispatcher takes the state back; the rule manager reports the alert again.
        s.d = sim(SIMPLE).d;
        s.d.restore(serde_json::from_str(&saved).unwrap());
        let sent = s.run(70 * MIN);
        // The restored group's first flush is group_wait after the restart (at 10m10s), so the
        // repeats land on that grid: 30m and 60m after the last notification, rounded up.
        assert_eq!(times(&sent), [40_000 + 30 * MIN, 40_000 + 60 * MIN]);
        assert_eq!(s.events_of(EventKind::Fired), ["a"]);
    }

    #[test]
    fn restart_still_sends_a_pending_resolution() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(MIN);
        s.forget("alertname=A,instance=a");
        let saved = s.d.state();
        s.d = sim(SIMPLE).d;
        s.d.set_restore_grace(2 * MIN);
        s.d.restore(saved);
        let start = s.now;
        let sent = s.run(10 * MIN);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].0 >= start + 2 * MIN, "{}", sent[0].0);
        assert_eq!(content(&sent[0].1), ["a:resolved"]);
        assert!(s.d.state().iter().all(|g| g.alerts.iter().all(|a| a.status == Status::Resolved)));
    }

    #[test]
    fn restored_alert_coming_back_late_is_not_a_duplicate() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(MIN);
        let saved = s.d.state();
        let kept = s.alerts.clone();
        s.alerts.clear();
        s.d = sim(SIMPLE).d;
        s.d.restore(saved);
        s.run(6 * MIN);
        s.alerts = kept;
        let sent = s.run(40 * MIN);
        assert_eq!(times(&sent), [30_000 + 30 * MIN]);
        assert_eq!(s.events_of(EventKind::Fired), ["a"]);
        assert!(s.events_of(EventKind::Resolved).is_empty());
    }

    #[test]
    fn reload_keeps_what_was_notified_and_reported() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(10 * MIN);
        s.silence("instance=a", 0, 60 * MIN);
        s.run(11 * MIN);
        let mut d = sim(SIMPLE).d;
        d.take_over(std::mem::replace(&mut s.d, sim(SIMPLE).d));
        s.d = d;
        s.forget("alertname=A,instance=a");
        s.run(20 * MIN);
        assert_eq!(s.events_of(EventKind::Fired), ["a"]);
        assert_eq!(s.events_of(EventKind::Silenced), ["a"]);
        assert_eq!(s.events_of(EventKind::Resolved), ["a"]);
    }

    const FORWARD: &str = "route: {receiver: am, group_wait: 30s}\ninhibit_rules: []\n";

    #[test]
    fn alertmanager_receivers_get_changes_at_once_and_resends() {
        let mut s = sim(FORWARD);
        s.fire("alertname=A,instance=a");
        assert_eq!(times(&s.run(150_000)), [0, 60_000, 120_000]);
        s.fire("alertname=A,instance=b");
        let sent = s.run(160_000);
        assert_eq!(content(&sent[0].1), ["a:firing", "b:firing"]);
        s.resolve("alertname=A,instance=a");
        let sent = s.run(300_000);
        assert_eq!(times(&sent), [170_000, 230_000, 290_000]);
        assert_eq!(content(&sent[2].1), ["a:resolved", "b:firing"]);
        s.forget("alertname=A,instance=a");
        let sent = s.run(360_000);
        assert_eq!(content(&sent[0].1), ["b:firing"]);
    }

    #[test]
    fn thresholds_cooldown_applies_to_their_alerts() {
        let yaml = "route: {receiver: ops, group_by: [alertname], group_wait: 10s, group_interval: 1m}\n\
                    thresholds:\n- {name: Load, expr: node_load1, warning: 4, critical: 8, cooldown: 10m}\n";
        let mut s = sim(yaml);
        s.fire("alertname=Load,severity=warning,instance=a");
        s.fire("alertname=Other,instance=a");
        let sent = s.run(25 * MIN);
        let load: Vec<i64> = sent.iter().filter(|(_, n)| n.group_labels["alertname"] == "Load").map(|(t, _)| *t).collect();
        assert_eq!(load, [10_000, 10_000 + 10 * MIN, 10_000 + 20 * MIN]);
        assert_eq!(sent.iter().filter(|(_, n)| n.group_labels["alertname"] == "Other").count(), 1);
    }

    /// A pseudo-random storyline of 12 alerts over 6 hours with a restart in the middle; the
    /// notifications keep the timing rules and every announced alert gets one resolution.
    #[test]
    fn random_storyline_keeps_the_rules() {
        let mut s = sim(SIMPLE);
        let mut seed: u64 = 42;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let specs: Vec<String> = (0..12).map(|i| format!("alertname=A{},instance=i{i}", i % 3)).collect();
        for minute in 0..360 {
            if minute == 180 {
                let saved = s.d.state();
                s.d = sim(SIMPLE).d;
                s.d.restore(saved);
            }
            let spec = &specs[next() % specs.len()];
            match (next() % 4, s.alerts.get(spec).map(|a| a.ends_at_ms.is_none())) {
                (0 | 1, None) | (0, Some(false)) => s.fire(spec),
                (2, Some(true)) => s.resolve(spec),
                (3, Some(false)) => s.forget(spec),
                _ => {}
            }
            s.run(minute * MIN + 50_000);
        }
        for spec in &specs {
            if s.alerts.get(spec).is_some_and(|a| a.ends_at_ms.is_none()) {
                s.resolve(spec);
            }
        }
        s.run(400 * MIN);
        check_storyline(&s.sent);
    }

    fn check_storyline(sent: &[(i64, Notification)]) {
        let mut last: HashMap<&str, (i64, Vec<String>)> = HashMap::default();
        let mut status: HashMap<&str, Status> = HashMap::default();
        for (t, n) in sent {
            let now = content(n);
            if let Some((prev, before)) = last.get(n.group_key.as_str()) {
                assert!(t - prev >= 5 * MIN, "{} notified at {prev} and {t}", n.group_key);
                assert!(*before != now || t - prev >= 30 * MIN, "{} repeated early at {t}", n.group_key);
            }
            for a in &n.alerts {
                let was = status.insert(&a.fingerprint, a.status);
                assert!(!(a.status == Status::Resolved && was != Some(Status::Firing)), "{:?} resolved twice at {t}", a.labels);
            }
            last.insert(&n.group_key, (*t, now));
        }
        let resolved = sent.iter().flat_map(|(_, n)| &n.alerts).filter(|a| a.status == Status::Resolved).count();
        assert!(sent.len() > 20 && resolved > 10, "{} {resolved}", sent.len());
        assert!(status.values().all(|s| *s == Status::Resolved), "{status:?}");
    }

    #[test]
    fn state_changes_follow_notifications_and_removals() {
        let mut s = sim(SIMPLE);
        s.fire("alertname=A,instance=a");
        s.run(20_000);
        assert_eq!(s.d.take_state_changes(), StateChanges::default());
        s.run(30_000);
        let first = s.d.take_state_changes();
        assert_eq!(first.changed, s.d.state());
        s.run(10 * MIN);
        assert_eq!(s.d.take_state_changes(), StateChanges::default());
        s.forget("alertname=A,instance=a");
        s.run(20 * MIN);
        let gone = s.d.take_state_changes();
        assert_eq!(gone.removed, [("ops".to_string(), r#"{}:{alertname="A"}"#.to_string())]);
        // State of a route that no longer exists is removed too.
        let mut d = sim(SIMPLE).d;
        let stale = GroupState { receiver: "pager".into(), ..first.changed[0].clone() };
        d.restore(vec![stale]);
        assert_eq!(d.take_state_changes().removed, [("pager".to_string(), r#"{}:{alertname="A"}"#.to_string())]);
    }

    #[test]
    fn dispatcher_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<Dispatcher>();
    }

    #[test]
    fn unknown_receiver_is_an_error() {
        let cfg: NotifyConfig = serde_yaml_ng::from_str("route: {receiver: nobody}").unwrap();
        let e = Dispatcher::new(&cfg, &kinds(), "").err().unwrap().to_string();
        assert!(e.contains("nobody"), "{e}");
    }
}
