//! Query subscriptions (the REST binding's `/queries/{name}/subscriptions`):
//! a named query run again and again for one subscriber, each run handing
//! over the matching events recorded since the last run that was delivered.
//!
//! A subscription is triggered either by new events (`stream: true`) or by
//! a schedule (EPCIS 1.2 §8.2.5.3's QuerySchedule, as the REST binding
//! carries it). What "since the last run" means is exact: per shard, the
//! first entry index not yet handed over (`frontier`). A shard's entries are
//! recorded in index order, so everything from the frontier up to what the
//! read model has read is what was recorded since; a run that was delivered
//! moves the frontier to where it ended. `initialRecordTime` sets the first
//! frontier: the entries whose record time (`Reads::record_time`) is at or
//! after it.
//!
//! Kept in `subscriptions.json` in the data directory (owner-only: it holds
//! the subscribers' signature tokens), replaced whole and durably on every
//! change, so a subscription acknowledged with 201 and every frontier a
//! delivery reached survive a restart. Delivery is at least once: a run whose
//! delivery failed, or that a crash cut short, is sent again from the same
//! frontier, and its events carry their eventIDs for the subscriber to
//! recognise them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use api::{ApiError, Principal, Role};
use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The file the subscriptions are kept in.
pub const FILE: &str = "subscriptions.json";

/// The most subscriptions one named query may have.
pub const MAX_PER_QUERY: usize = 64;

/// One subscription, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    pub query_name: String,
    /// Who subscribed: the events delivered are what they may see.
    pub org: String,
    pub role: Role,
    /// The webhook's URL (`http` or `https`).
    pub dest: String,
    /// The secret the deliveries are signed with (`GS1-Signature`); never
    /// shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_token: Option<String>,
    pub trigger: Trigger,
    pub report_if_empty: bool,
    pub initial_record_time_ms: i64,
    pub created_at_ms: i64,
    /// The last run the subscriber answered with a 2xx.
    pub last_notified_at_ms: Option<i64>,
    /// When the last delivered run started (the REST binding's
    /// `minRecordTime`: events recorded from then on are the next run's).
    pub min_record_time_ms: i64,
    /// Per shard, the first entry not yet handed over.
    pub frontier: Vec<u64>,
}

/// What runs a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// Every time new events match.
    Stream,
    /// At the times the schedule matches (UTC).
    Schedule(Schedule),
}

/// A QuerySchedule: each field, as given, a list of numbers and
/// `[low-high]` ranges the time's field must match; an omitted field
/// matches every value. Times are taken in UTC.
///
/// Besides the standard's grammar a field may be `*` (every value, as if
/// omitted) or `start/step` (`0/30`: 0 and 30): the REST binding's own
/// examples write schedules that way.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    /// 1 is Monday, 7 Sunday.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<String>,
}

/// A schedule's fields as sets of values (bit `v` set: value `v` matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cron {
    second: u64,
    minute: u64,
    hour: u64,
    day_of_month: u64,
    month: u64,
    day_of_week: u64,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidSubscription {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The values a schedule field selects, as a bit set; `None` is every value.
fn field_set(name: &str, text: Option<&str>, low: u32, high: u32) -> Result<u64, ApiError> {
    let all = (low..=high).fold(0u64, |m, v| m | 1 << v);
    let Some(text) = text.map(str::trim) else {
        return Ok(all);
    };
    if text == "*" {
        return Ok(all);
    }
    let bad = || {
        invalid(
            &format!("schedule.{name}"),
            format!("{text:?}: give numbers from {low} to {high} and ranges [low-high], comma-separated (\"0\", \"[1-5]\", \"0,30\")"),
        )
    };
    let number = |s: &str| -> Result<u32, ApiError> {
        let all_digits = !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
        let v: u32 = if all_digits {
            s.parse().map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        if (low..=high).contains(&v) {
            Ok(v)
        } else {
            Err(bad())
        }
    };
    let mut set = 0u64;
    for element in text.split(',') {
        let element = element.trim();
        if let Some(range) = element.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let (a, b) = range.split_once('-').ok_or_else(bad)?;
            let (a, b) = (number(a.trim())?, number(b.trim())?);
            if a > b {
                return Err(bad());
            }
            set |= (a..=b).fold(0, |m, v| m | 1 << v);
        } else if let Some((start, step)) = element.split_once('/') {
            let start = if start == "*" { low } else { number(start)? };
            let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(bad)?;
            set |= (start..=high)
                .step_by(step as usize)
                .fold(0, |m, v| m | 1 << v);
        } else {
            set |= 1 << number(element)?;
        }
    }
    Ok(set)
}

impl Schedule {
    /// The schedule as sets, or the field at fault.
    pub fn cron(&self) -> Result<Cron, ApiError> {
        Ok(Cron {
            second: field_set("second", self.second.as_deref(), 0, 59)?,
            minute: field_set("minute", self.minute.as_deref(), 0, 59)?,
            hour: field_set("hour", self.hour.as_deref(), 0, 23)?,
            day_of_month: field_set("dayOfMonth", self.day_of_month.as_deref(), 1, 31)?,
            month: field_set("month", self.month.as_deref(), 1, 12)?,
            day_of_week: field_set("dayOfWeek", self.day_of_week.as_deref(), 1, 7)?,
        })
    }
}

impl Cron {
    fn day_matches(&self, d: chrono::NaiveDate) -> bool {
        let has = |set: u64, v: u32| set & (1 << v) != 0;
        has(self.day_of_month, d.day())
            && has(self.month, d.month())
            && has(self.day_of_week, d.weekday().number_from_monday())
    }

    /// The first whole second strictly after `after_ms` (ms since the
    /// epoch) that the schedule matches, within eight years (a schedule
    /// such as 31 February never matches: `None`).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let has = |set: u64, v: u32| set & (1 << v) != 0;
        let start =
            chrono::DateTime::from_timestamp_millis(after_ms.div_euclid(1000) * 1000 + 1000)?;
        let first_day = start.date_naive();
        for day in first_day.iter_days().take(366 * 8) {
            if !self.day_matches(day) {
                continue;
            }
            for h in (0..24).filter(|&h| has(self.hour, h)) {
                for m in (0..60).filter(|&m| has(self.minute, m)) {
                    for s in (0..60).filter(|&s| has(self.second, s)) {
                        let t = day.and_hms_opt(h, m, s)?.and_utc();
                        if t >= start {
                            return Some(t.timestamp_millis());
                        }
                    }
                }
            }
        }
        None
    }

    /// Whether the schedule matches the second `t_ms` falls in.
    pub fn matches(&self, t_ms: i64) -> bool {
        let has = |set: u64, v: u32| set & (1 << v) != 0;
        chrono::DateTime::from_timestamp_millis(t_ms).is_some_and(|t| {
            self.day_matches(t.date_naive())
                && has(self.hour, t.hour())
                && has(self.minute, t.minute())
                && has(self.second, t.second())
        })
    }
}

/// A subscription as the subscriber asks for it (`POST`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    /// Where the results go: an `http` or `https` URL.
    pub dest: String,
    /// A secret of the subscriber's: each delivery's `GS1-Signature` is
    /// `sha256=` and the hex HMAC-SHA256 of the body under it.
    #[serde(default)]
    pub signature_token: Option<String>,
    /// Deliver whenever new events match.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Or run at these times (UTC), cron-like.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<Schedule>,
    /// With a schedule: deliver an empty result too.
    #[serde(default)]
    pub report_if_empty: Option<bool>,
    /// Only events recorded at or after this time (RFC 3339); the first
    /// run's lower bound, now when omitted.
    #[serde(default)]
    pub initial_record_time: Option<String>,
}

/// The longest `dest` and `signatureToken` taken.
const MAX_DEST: usize = 2048;
const MAX_TOKEN: usize = 512;

/// The trigger a request asks for: exactly one of `stream: true` and a
/// schedule (EPCIS: a SubscriptionControlsException otherwise).
pub fn trigger_of(
    stream: Option<bool>,
    schedule: Option<Schedule>,
    report_if_empty: Option<bool>,
) -> Result<Trigger, ApiError> {
    match (stream, schedule) {
        (Some(true), None) => {
            if report_if_empty == Some(true) {
                return Err(invalid(
                    "reportIfEmpty",
                    "a stream delivers only when events match; reportIfEmpty goes with a schedule",
                ));
            }
            Ok(Trigger::Stream)
        }
        (Some(true), Some(_)) => Err(invalid(
            "schedule",
            "give stream: true or a schedule, not both",
        )),
        (_, Some(s)) => {
            s.cron()?;
            Ok(Trigger::Schedule(s))
        }
        (_, None) => Err(invalid(
            "stream",
            "give stream: true (deliver new events as they are recorded) or a schedule (deliver at set times)",
        )),
    }
}

/// Checks a webhook URL: absolute `http` or `https`, with a host.
pub fn check_dest(dest: &str) -> Result<(), ApiError> {
    let rest = dest
        .strip_prefix("https://")
        .or_else(|| dest.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok = dest.len() <= MAX_DEST
        && host.is_some_and(|h| !h.is_empty() && !h.contains('@'))
        && dest.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "dest",
            format!("{dest:?}: give the absolute http or https URL results are POSTed to (no user info, at most {MAX_DEST} characters)"),
        ))
    }
}

/// A time as RFC 3339, or the field at fault.
pub fn time_of(field: &str, text: &str) -> Result<i64, ApiError> {
    analytics::lineage::query::time(field, text).map_err(|e| invalid(field, e.message))
}

fn rfc3339(ms: i64) -> Value {
    analytics::lineage::query::rfc3339(ms).map_or(Value::Null, Value::String)
}

impl Subscription {
    /// The subscription as the REST binding shows one: everything but the
    /// signature token.
    pub fn view(&self) -> Value {
        let mut v = json!({
            "subscriptionID": self.subscription_id,
            "queryName": self.query_name,
            "dest": self.dest,
            "createdAt": rfc3339(self.created_at_ms),
            "initialRecordTime": rfc3339(self.initial_record_time_ms),
            "minRecordTime": rfc3339(self.min_record_time_ms),
            "reportIfEmpty": self.report_if_empty,
            "signed": self.signature_token.is_some(),
        });
        let o = v.as_object_mut().expect("an object");
        match &self.trigger {
            Trigger::Stream => {
                o.insert("stream".into(), true.into());
            }
            Trigger::Schedule(s) => {
                o.insert(
                    "schedule".into(),
                    serde_json::to_value(s).expect("a schedule serialises"),
                );
            }
        }
        if let Some(t) = self.last_notified_at_ms {
            o.insert("lastNotifiedAt".into(), rfc3339(t));
        }
        v
    }

    /// Who the deliveries are for.
    pub fn subscriber(&self) -> Principal {
        Principal {
            org: self.org.clone(),
            role: self.role,
        }
    }
}

/// The node's subscriptions.
#[derive(Debug)]
pub struct Subscriptions {
    path: PathBuf,
    all: Mutex<BTreeMap<String, Subscription>>,
}

/// Whether `who` may see `s`: its organisation's, or everything for
/// investigators and the operator (as named queries).
fn sees(who: &Principal, s: &Subscription) -> bool {
    matches!(who.role, Role::Investigator | Role::Operator) || who.org == s.org
}

fn not_found(query: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "query {query:?} has no subscription {id:?} that you may see; GET /queries/{query}/subscriptions lists them"
    ))
}

/// A fresh subscription id: 128 random bits, as a UUID (version 4).
fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the system's random source");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Subscriptions {
    /// The subscriptions of the node whose data directory is `dir` (none
    /// if it has no file yet).
    pub fn open(dir: &Path) -> Result<Subscriptions, crate::listfile::ListFileError> {
        let path = dir.join(FILE);
        let all = crate::listfile::read::<Subscription>(&path, "subscriptions")?
            .into_iter()
            .map(|s| (s.subscription_id.clone(), s))
            .collect();
        Ok(Subscriptions {
            path,
            all: Mutex::new(all),
        })
    }

    /// Subscribes `who` to query `query` as `request` asks, the first run
    /// starting at the frontier `frontier_at` finds for the request's
    /// `initialRecordTime` (`None`: from now); durable when this returns.
    pub fn create(
        &self,
        who: &Principal,
        query: &str,
        request: Request,
        now_ms: i64,
        frontier_at: impl FnOnce(Option<i64>) -> Result<Vec<u64>, ApiError>,
    ) -> Result<Subscription, ApiError> {
        check_dest(&request.dest)?;
        if request
            .signature_token
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > MAX_TOKEN)
        {
            return Err(invalid(
                "signatureToken",
                format!("give 1 to {MAX_TOKEN} characters, or leave it out"),
            ));
        }
        let trigger = trigger_of(request.stream, request.schedule, request.report_if_empty)?;
        let asked = request
            .initial_record_time
            .as_deref()
            .map(|t| time_of("initialRecordTime", t))
            .transpose()?;
        let frontier = frontier_at(asked)?;
        let initial = asked.unwrap_or(now_ms);
        let s = Subscription {
            subscription_id: new_id(),
            query_name: query.to_string(),
            org: who.org.clone(),
            role: who.role,
            dest: request.dest,
            signature_token: request.signature_token,
            trigger,
            report_if_empty: request.report_if_empty.unwrap_or(false),
            initial_record_time_ms: initial,
            created_at_ms: now_ms,
            last_notified_at_ms: None,
            min_record_time_ms: initial,
            frontier,
        };
        let mut all = self.all.lock().expect("subscriptions lock");
        if all.values().filter(|x| x.query_name == query).count() >= MAX_PER_QUERY {
            return Err(invalid(
                "dest",
                format!(
                    "query {query:?} has {MAX_PER_QUERY} subscriptions already; remove one first"
                ),
            ));
        }
        let mut next = all.clone();
        next.insert(s.subscription_id.clone(), s.clone());
        self.write(&next)?;
        *all = next;
        Ok(s)
    }

    /// Subscription `id` of query `query`, if `who` may see it.
    pub fn get(&self, who: &Principal, query: &str, id: &str) -> Result<Subscription, ApiError> {
        self.all
            .lock()
            .expect("subscriptions lock")
            .get(id)
            .filter(|s| s.query_name == query && sees(who, s))
            .cloned()
            .ok_or_else(|| not_found(query, id))
    }

    /// The subscriptions of query `query` that `who` may see.
    pub fn of_query(&self, who: &Principal, query: &str) -> Vec<Subscription> {
        self.all
            .lock()
            .expect("subscriptions lock")
            .values()
            .filter(|s| s.query_name == query && sees(who, s))
            .cloned()
            .collect()
    }

    /// Every subscription (for the deliveries).
    pub fn all(&self) -> Vec<Subscription> {
        self.all
            .lock()
            .expect("subscriptions lock")
            .values()
            .cloned()
            .collect()
    }

    /// Unsubscribes `id`, if `who` may see it; durable when this returns.
    pub fn delete(&self, who: &Principal, query: &str, id: &str) -> Result<(), ApiError> {
        self.get(who, query, id)?;
        self.change(|all| {
            all.remove(id);
        })
    }

    /// Removes every subscription of query `query` (the query is gone).
    pub fn delete_query(&self, query: &str) -> Result<(), ApiError> {
        self.change(|all| all.retain(|_, s| s.query_name != query))
    }

    /// Records a delivered run of `id`: its frontier moves to `frontier`,
    /// and the run's start and the subscriber's answer are its times. A
    /// subscription removed meanwhile stays removed.
    pub fn delivered(
        &self,
        id: &str,
        frontier: Vec<u64>,
        started_ms: i64,
        answered_ms: Option<i64>,
    ) -> Result<(), ApiError> {
        self.change(|all| {
            if let Some(s) = all.get_mut(id) {
                s.frontier = frontier;
                s.min_record_time_ms = started_ms;
                if answered_ms.is_some() {
                    s.last_notified_at_ms = answered_ms;
                }
            }
        })
    }

    fn change(&self, f: impl FnOnce(&mut BTreeMap<String, Subscription>)) -> Result<(), ApiError> {
        let mut all = self.all.lock().expect("subscriptions lock");
        let mut next = all.clone();
        f(&mut next);
        if next != *all {
            self.write(&next)?;
            *all = next;
        }
        Ok(())
    }

    /// Writes `all` as the file, durably, readable by the node's user only.
    fn write(&self, all: &BTreeMap<String, Subscription>) -> Result<(), ApiError> {
        let list: Vec<&Subscription> = all.values().collect();
        crate::listfile::write(&self.path, &list, ledger::durable::Mode::Private)
    }
}

/// A run's parameters for `GET /queries/{name}/events` over a WebSocket:
/// `stream`, the schedule's fields, `reportIfEmpty`, `initialRecordTime`.
pub fn socket_controls(
    params: &[(String, String)],
) -> Result<(Trigger, bool, Option<i64>), ApiError> {
    let mut stream = None;
    let mut schedule = Schedule::default();
    let mut scheduled = false;
    let mut report_if_empty = None;
    let mut initial = None;
    let boolean = |name: &str, v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, format!("{v:?}: give true or false"))),
    };
    for (name, value) in params {
        let mut field = |slot: &mut Option<String>| {
            scheduled = true;
            *slot = Some(value.clone());
        };
        match name.as_str() {
            "stream" => stream = Some(boolean(name, value)?),
            "reportIfEmpty" => report_if_empty = Some(boolean(name, value)?),
            "initialRecordTime" => initial = Some(time_of(name, value)?),
            "second" => field(&mut schedule.second),
            "minute" => field(&mut schedule.minute),
            "hour" => field(&mut schedule.hour),
            "dayOfMonth" => field(&mut schedule.day_of_month),
            "month" => field(&mut schedule.month),
            "dayOfWeek" => field(&mut schedule.day_of_week),
            other => {
                return Err(invalid(
                    other,
                    "a subscription over a WebSocket takes stream, second, minute, hour, dayOfMonth, month, dayOfWeek, reportIfEmpty and initialRecordTime; the query's own parameters are the named query's",
                ))
            }
        }
    }
    let trigger = trigger_of(stream, scheduled.then_some(schedule), report_if_empty)?;
    Ok((trigger, report_if_empty.unwrap_or(false), initial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    fn cron(fields: &[(&str, &str)]) -> Result<Cron, ApiError> {
        let mut s = Schedule::default();
        for (k, v) in fields {
            let slot = match *k {
                "second" => &mut s.second,
                "minute" => &mut s.minute,
                "hour" => &mut s.hour,
                "dayOfMonth" => &mut s.day_of_month,
                "month" => &mut s.month,
                _ => &mut s.day_of_week,
            };
            *slot = Some(v.to_string());
        }
        s.cron()
    }

    /// The four examples of EPCIS 1.2 §8.2.5.3, and the REST binding's.
    #[test]
    fn schedules_fire_when_the_standard_says() {
        // "Once per hour, at the top of the hour."
        let hourly = cron(&[("second", "0"), ("minute", "0")]).unwrap();
        assert_eq!(
            hourly.next_after(at("2026-12-07T15:16:51Z")),
            Some(at("2026-12-07T16:00:00Z"))
        );
        assert_eq!(
            hourly.next_after(at("2026-12-07T16:00:00Z")),
            Some(at("2026-12-07T17:00:00Z"))
        );
        // "Once per day at 2:30 am."
        let daily = cron(&[("second", "0"), ("minute", "30"), ("hour", "2")]).unwrap();
        assert_eq!(
            daily.next_after(at("2026-12-07T15:16:51Z")),
            Some(at("2026-12-08T02:30:00Z"))
        );
        // "Every hour on the hour, weekdays only": 2026-12-12 is a Saturday.
        let weekdays = cron(&[("second", "0"), ("minute", "0"), ("dayOfWeek", "[1-5]")]).unwrap();
        assert_eq!(
            weekdays.next_after(at("2026-12-11T23:30:00Z")),
            Some(at("2026-12-14T00:00:00Z"))
        );
        // "Once per second between 2:00:00 and 2:59:59."
        let two = cron(&[("hour", "2")]).unwrap();
        assert_eq!(
            two.next_after(at("2026-12-07T02:10:10.500Z")),
            Some(at("2026-12-07T02:10:11Z"))
        );
        assert!(two.matches(at("2026-12-07T02:59:59Z")));
        assert!(!two.matches(at("2026-12-07T03:00:00Z")));
        // The REST binding writes "0/30": seconds 0 and 30.
        let half = cron(&[("second", "0/30")]).unwrap();
        assert_eq!(
            half.next_after(at("2026-12-07T15:16:00Z")),
            Some(at("2026-12-07T15:16:30Z"))
        );
        assert_eq!(
            cron(&[("second", "5,[10-12]")])
                .unwrap()
                .next_after(at("2026-12-07T15:16:10Z")),
            Some(at("2026-12-07T15:16:11Z"))
        );
        // 31 February never comes.
        assert_eq!(
            cron(&[("dayOfMonth", "31"), ("month", "2")])
                .unwrap()
                .next_after(0),
            None
        );
    }

    #[test]
    fn schedules_outside_the_grammar_are_refused_by_field() {
        for (field, value) in [
            ("second", "60"),
            ("minute", "[30-10]"),
            ("hour", "24"),
            ("dayOfMonth", "0"),
            ("month", "13"),
            ("dayOfWeek", "8"),
            ("second", "a"),
            ("second", ""),
            ("minute", "[1-"),
            ("second", "0/0"),
            ("hour", "-1"),
        ] {
            match cron(&[(field, value)]) {
                Err(ApiError::InvalidSubscription { field: f, .. }) => {
                    assert_eq!(f, format!("schedule.{field}"), "{value}")
                }
                other => panic!("{field}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_subscription_needs_exactly_one_trigger_and_a_web_url() {
        let s = || {
            Some(Schedule {
                minute: Some("5".into()),
                ..Default::default()
            })
        };
        assert!(matches!(
            trigger_of(Some(true), None, None),
            Ok(Trigger::Stream)
        ));
        assert!(matches!(
            trigger_of(None, s(), Some(true)),
            Ok(Trigger::Schedule(_))
        ));
        for (stream, schedule, report) in [
            (None, None, None),
            (Some(false), None, None),
            (Some(true), s(), None),
            (Some(true), None, Some(true)),
        ] {
            assert!(
                matches!(
                    trigger_of(stream, schedule.clone(), report),
                    Err(ApiError::InvalidSubscription { .. })
                ),
                "{stream:?} {schedule:?} {report:?}"
            );
        }
        for ok in [
            "http://127.0.0.1:8080/hook",
            "https://client.example.com/queryCallback?x=1",
        ] {
            check_dest(ok).unwrap();
        }
        for bad in [
            "",
            "ftp://x/y",
            "https://",
            "client.example.com/hook",
            "http://user@host/",
            "http://a b/",
        ] {
            assert!(check_dest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscriptions_survive_reopening_and_each_organisation_sees_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let a = Principal {
            org: "urn:epc:id:sgln:0614141.00001.0".into(),
            role: Role::Partner,
        };
        let b = Principal {
            org: "urn:epc:id:sgln:0614141.00002.0".into(),
            role: Role::Partner,
        };
        let subs = Subscriptions::open(dir.path()).unwrap();
        let request = Request {
            dest: "http://127.0.0.1:9/hook".into(),
            signature_token: Some("secret".into()),
            stream: Some(true),
            schedule: None,
            report_if_empty: None,
            initial_record_time: Some("2026-11-01T00:00:00Z".into()),
        };
        let s = subs
            .create(&a, "q", request, 5, |t| {
                assert_eq!(t, Some(at("2026-11-01T00:00:00Z")));
                Ok(vec![3, 4])
            })
            .unwrap();
        assert_eq!(s.frontier, [3, 4]);
        assert!(
            s.view().get("signatureToken").is_none(),
            "the secret is never shown"
        );
        subs.delivered(&s.subscription_id, vec![7, 8], 10, Some(11))
            .unwrap();
        let subs = Subscriptions::open(dir.path()).unwrap();
        let again = subs.get(&a, "q", &s.subscription_id).unwrap();
        assert_eq!(
            (again.frontier.clone(), again.last_notified_at_ms),
            (vec![7, 8], Some(11))
        );
        assert_eq!(again.signature_token.as_deref(), Some("secret"));
        assert!(subs.get(&b, "q", &s.subscription_id).is_err());
        assert!(subs.get(&a, "other", &s.subscription_id).is_err());
        assert!(subs.delete(&b, "q", &s.subscription_id).is_err());
        subs.delete_query("q").unwrap();
        assert!(Subscriptions::open(dir.path()).unwrap().all().is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the signature tokens are the node user's only"
        );
    }
}
