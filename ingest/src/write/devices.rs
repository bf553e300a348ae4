//! Device changes: registration, key rotation, revocation and reinstatement, each an identity entry on the organisation's shard.

use super::*;

impl Ingest {
    /// Puts a suspended device of the caller's organisation back in service.
    pub async fn reinstate_device(
        &self,
        who: &Principal,
        device: &str,
        reason: &str,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let _guard = self.registry_lock.lock().await;
        let entry = Entry::Verdict(RuleVerdict {
            rule: "reinstated".into(),
            subject: device.to_string(),
            kind: VerdictKind::Reinstate,
            from_ms: self.node.clock().now_ms(),
            to_ms: None,
            explanation: format!("reinstated by {}: {reason}", who.org),
            evidence: Vec::new(),
        });
        if let Some(done) = self.committed_device_change(attempt, who, device, &entry)? {
            return Ok(done);
        }
        if self
            .identity
            .read()
            .expect("identity lock")
            .device_of(&who.org, device)?
            .suspended
            .is_none()
        {
            return Err(ApiError::NotSuspended(device.to_string()));
        }
        self.commit(device, vec![entry], device).await
    }
}

impl Ingest {
    /// Registers a device of the caller's organisation under `public_key`,
    /// which signs readings taken from `active_from_ms` on (default: now;
    /// an earlier time admits a logger's backlog).
    pub async fn register_device(
        &self,
        who: &Principal,
        device: &str,
        public_key: VerifyingKey,
        active_from_ms: Option<i64>,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        crate::wire::check_id(device, "device")?;
        let _guard = self.registry_lock.lock().await;
        let at_ms = self.node.clock().now_ms();
        let entry = Entry::Identity(IdentityChange::DeviceRegistered {
            org: who.org.clone(),
            device: device.to_string(),
            public_key: public_key.to_bytes(),
            at_ms,
            active_from_ms: active_from_ms.unwrap_or(at_ms),
        });
        if let Some(done) = self.committed_device_change(attempt, who, device, &entry)? {
            return Ok(done);
        }
        {
            let id = self.identity.read().expect("identity lock");
            if !id.orgs.contains_key(&who.org) {
                return Err(ApiError::UnknownOrganisation(who.org.clone()));
            }
            if id.devices.contains_key(device) {
                return Err(ApiError::DeviceExists(device.to_string()));
            }
        }
        self.commit(&who.org, vec![entry], device).await
    }

    /// Rotates a device's key: the new key signs readings from now on.
    pub async fn rotate_key(
        &self,
        who: &Principal,
        device: &str,
        public_key: VerifyingKey,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.change_device(who, device, attempt, |org, device, at_ms| {
            IdentityChange::KeyRotated {
                org,
                device,
                public_key: public_key.to_bytes(),
                at_ms,
            }
        })
        .await
    }

    /// Revokes a device: nothing it signs is accepted any more.
    pub async fn revoke_device(
        &self,
        who: &Principal,
        device: &str,
        reason: &str,
        attempt: Attempt,
    ) -> Result<WriteResult, ApiError> {
        self.change_device(who, device, attempt, |org, device, at_ms| {
            IdentityChange::DeviceRevoked {
                org,
                device,
                reason: reason.to_string(),
                at_ms,
            }
        })
        .await
    }

    /// Appends an identity change to a device of the caller's organisation.
    pub(super) async fn change_device(
        &self,
        who: &Principal,
        device: &str,
        attempt: Attempt,
        change: impl FnOnce(String, String, i64) -> IdentityChange,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let _guard = self.registry_lock.lock().await;
        self.identity
            .read()
            .expect("identity lock")
            .device_of(&who.org, device)?;
        let entry = Entry::Identity(change(
            who.org.clone(),
            device.to_string(),
            self.node.clock().now_ms(),
        ));
        if let Some(done) = self.committed_device_change(attempt, who, device, &entry)? {
            return Ok(done);
        }
        self.commit(&who.org, vec![entry], device).await
    }
}

/// `e` with the time it was made zeroed: two attempts at one change differ
/// only there.
pub(super) fn untimed(e: &Entry) -> Entry {
    let mut e = e.clone();
    match &mut e {
        Entry::Identity(IdentityChange::DeviceRegistered {
            at_ms,
            active_from_ms,
            ..
        }) => {
            // An activation left to the registration time is the attempt's
            // time too.
            if active_from_ms == at_ms {
                *active_from_ms = 0;
            }
            *at_ms = 0;
        }
        Entry::Identity(
            IdentityChange::OrgRegistered { at_ms, .. }
            | IdentityChange::KeyRotated { at_ms, .. }
            | IdentityChange::DeviceRevoked { at_ms, .. },
        ) => *at_ms = 0,
        Entry::Verdict(v) => v.from_ms = 0,
        _ => {}
    }
    e
}
