//! EPCIS 2.0 capture: events homed on the identifier each is chiefly about, eventIDs already captured answered where they are, the capture job journalled before it is named; and a captured event read back as its document.

use super::*;

impl Ingest {
    /// Captures EPCIS events: each is appended on the home shard of the
    /// identifier it is chiefly about (receipts carry it to the others'). An
    /// event whose eventID was captured before is answered with where it is
    /// when its content is the same, refused when it differs, and appended
    /// when it is a correction (it carries an `errorDeclaration`).
    pub async fn capture(
        &self,
        who: &Principal,
        captured: Vec<crate::epcis::Captured>,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        if !self
            .identity
            .read()
            .expect("identity lock")
            .orgs
            .contains_key(&who.org)
        {
            return Err(ApiError::UnknownOrganisation(who.org.clone()));
        }
        self.check_locations(who, &captured)?;
        let _guard = self.capture_lock.lock().await;
        let mut out = WriteResult::default();
        let mut new = Vec::new();
        {
            let events = self.events.read().expect("events lock");
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for c in &captured {
                let id = c.event.event_id.as_str();
                let earlier = events.get(id);
                if let Some(loc) =
                    earlier.and_then(|v| v.iter().find(|l| l.fingerprint == c.fingerprint))
                {
                    // Its entry's id, from the log: an answer names entries
                    // by place and id alike.
                    let bytes = self
                        .node
                        .shard(loc.shard)
                        .and_then(|s| s.store().entry(loc.index).map_err(Into::into))
                        .map_err(crate::write_refusal)?;
                    out.already_captured.push(Written {
                        shard: loc.shard,
                        index: loc.index,
                        id: ledger::entry_id(&bytes).to_hex(),
                        subject: id.to_string(),
                    });
                    continue;
                }
                if (earlier.is_some() || seen.contains_key(id)) && !c.declares_error {
                    return Err(ApiError::DuplicateEvent(id.to_string()));
                }
                seen.insert(id, &c.fingerprint);
                new.push(c.clone());
            }
        }
        let commits = new.iter().map(|c| async move {
            let r = self
                .node
                .append(&c.partition_key, vec![Entry::Custody(c.event.clone())])
                .await;
            r.map(|committed| (c, committed))
        });
        // A bounded number in flight, in order: a document of thousands of
        // events must not fill a shard's append queue on its own (that is
        // other callers' room, refused as busy when full).
        let results: Vec<_> = futures_util::stream::iter(commits)
            .buffered(CAPTURE_IN_FLIGHT)
            .collect()
            .await;
        let mut events = self.events.write().expect("events lock");
        let mut failure = None;
        for r in results {
            match r {
                Ok((c, committed)) => {
                    let (index, id) = committed.entries[0];
                    events
                        .entry(c.event.event_id.clone())
                        .or_default()
                        .push(EventLoc {
                            shard: committed.shard,
                            index,
                            fingerprint: c.fingerprint.clone(),
                        });
                    out.receipts += committed.receipts.len();
                    out.entries.push(Written {
                        shard: committed.shard,
                        index,
                        id: id.to_hex(),
                        subject: c.event.event_id.clone(),
                    });
                }
                Err(e) => failure = Some(e),
            }
        }
        drop(events);
        if let Some(e) = failure {
            return Err(crate::write_refusal(e));
        }
        let job = ledger::Domain::CaptureJob
            .hash_parts(&[out
                .entries
                .iter()
                .chain(&out.already_captured)
                .map(|w| format!("{}/{};", w.shard, w.index))
                .collect::<String>()
                .as_bytes()])
            .to_hex()[..24]
            .to_string();
        out.capture_id = Some(job.clone());
        // Durable before the answer names the job: `GET /capture/{id}`
        // finds it after a restart too.
        self.capture_journal
            .append(&(job.clone(), out.clone()))
            .map_err(|e| ApiError::Unavailable(format!("recording the capture job: {e}")))?;
        let mut jobs = self.captures.lock().expect("captures lock");
        if jobs.len() >= MAX_CAPTURE_JOBS {
            jobs.pop_front();
        }
        jobs.push_back((job, out.clone()));
        Ok(out)
    }

    /// Refuses a document with an event at a place the caller neither
    /// owns nor was delegated (`IdentityState::may_record_at`): an
    /// organisation speaks for its own sites only. Nothing of the document
    /// is written then.
    fn check_locations(
        &self,
        who: &Principal,
        captured: &[crate::epcis::Captured],
    ) -> Result<(), ApiError> {
        let id = self.identity.read().expect("identity lock");
        for c in captured {
            let places = [
                ("readPoint", &c.event.read_point),
                ("bizLocation", &c.event.biz_location),
            ];
            for (field, place) in places {
                if let Some(place) = place {
                    id.may_record_at(&who.org, place, field)?;
                }
            }
        }
        Ok(())
    }

    /// A capture job by id, if it is still remembered.
    pub fn capture_job(&self, id: &str) -> Option<WriteResult> {
        self.captures
            .lock()
            .expect("captures lock")
            .iter()
            .find(|(j, _)| j == id)
            .map(|(_, r)| r.clone())
    }

    /// A capture job as `who` may see it: the organisation whose events it
    /// holds (the recorder of its first event), investigators and the
    /// operator. To anyone else it does not exist (404).
    pub fn capture_job_for(&self, who: &Principal, id: &str) -> Result<WriteResult, ApiError> {
        let not_found = || {
            ApiError::NotFound(format!(
                "no capture job {id:?} of yours (jobs are remembered until the server restarts)"
            ))
        };
        let job = self.capture_job(id).ok_or_else(not_found)?;
        if matches!(who.role, Role::Investigator | Role::Operator) {
            return Ok(job);
        }
        let Some(first) = job.entries.iter().chain(&job.already_captured).next() else {
            return Err(not_found());
        };
        let at = EntryRef {
            shard: first.shard,
            index: first.index,
            id: ledger::Digest::from_hex(&first.id).ok_or_else(not_found)?,
        };
        match self.committed_entry(&at)? {
            Entry::Custody(e) if e.recorded_by == who.org => Ok(job),
            _ => Err(not_found()),
        }
    }
}
