//! Location delegations: an organisation lets another record events at one
//! of its locations (a carrier's dock at a distribution centre), or stops
//! letting it; each an identity entry on the owner's shard. Capture checks
//! every event's places against them (`IdentityState::may_record_at`).

use super::*;

impl Ingest {
    /// Records that `who`'s organisation delegates `location` (one of its
    /// own: a GLN or an SGLN under it) to organisation `to`, or, with
    /// `withdraw`, that it withdraws that delegation. Delegating what is in
    /// force already answers with the entry that put it in force.
    pub async fn delegate_location(
        &self,
        who: &Principal,
        location: &str,
        to: &str,
        withdraw: bool,
    ) -> Result<WriteResult, ApiError> {
        self.writer(who)?;
        let _guard = self.registry_lock.lock().await;
        let key = {
            let id = self.identity.read().expect("identity lock");
            if !id.orgs.contains_key(&who.org) {
                return Err(ApiError::UnknownOrganisation(who.org.clone()));
            }
            let (Some(place), Some(delegate)) = (gs1::canonical_id(location), gs1::gln_of(to))
            else {
                return Err(ApiError::InvalidBody(format!(
                    "delegate a GLN or SGLN location (EPC URN or Digital Link) to an organisation's GLN; got location {location:?}, to {to:?}"
                )));
            };
            if gs1::gln_of(&place).is_none() {
                return Err(ApiError::InvalidBody(format!(
                    "{location:?} is not a location: delegate a GLN or an SGLN"
                )));
            }
            if id.location_owner(location) != Some(who.org.as_str()) {
                return Err(ApiError::Forbidden(format!(
                    "{location:?} is not a location of {}: an organisation delegates only locations under its own GLN",
                    who.org
                )));
            }
            if !id.org_by_gln.contains_key(&delegate) {
                return Err(ApiError::UnknownOrganisation(to.to_string()));
            }
            if gs1::gln_of(&who.org).as_ref() == Some(&delegate) {
                return Err(ApiError::InvalidBody(format!(
                    "{to:?} is {} itself: an organisation records at its own locations without a delegation",
                    who.org
                )));
            }
            let in_force = id.delegations.get(&(place.clone(), delegate.clone()));
            match (withdraw, in_force) {
                (false, Some(at)) => {
                    let at = at.clone();
                    drop(id);
                    let entry = self.committed_entry(&at)?;
                    return Ok(self.answer_committed(&at, location, &entry));
                }
                (true, None) => {
                    return Err(ApiError::NotFound(format!(
                        "no delegation of {location:?} to {to:?} is in force"
                    )))
                }
                _ => (place, delegate),
            }
        };
        let (org, location, to, at_ms) = (
            who.org.clone(),
            location.to_string(),
            to.to_string(),
            self.node.clock().now_ms(),
        );
        let change = if withdraw {
            IdentityChange::DelegationWithdrawn {
                org,
                location,
                to,
                at_ms,
            }
        } else {
            IdentityChange::LocationDelegated {
                org,
                location,
                to,
                at_ms,
            }
        };
        self.commit(&who.org, vec![Entry::Identity(change)], &key.0)
            .await
    }
}
