//! Organisations and locations.

use super::*;

/// An organisation, by its GLN (SGLN URN).
pub struct Organization(pub String);

#[Object]
impl Organization {
    /// Its identifier as the ledger names it (SGLN URN).
    pub(super) async fn id(&self) -> &str {
        &self.0
    }
    /// Its registered name.
    pub(super) async fn name(&self, ctx: &Context<'_>) -> Answer<Option<String>> {
        Ok(org(ctx, &self.0).await?.map(|(n, _)| n))
    }
    /// grower, packer, processor, carrier, distribution_centre, retailer,
    /// manufacturer, clinic, investigator, operator.
    pub(super) async fn role(&self, ctx: &Context<'_>) -> Answer<Option<&'static str>> {
        Ok(org(ctx, &self.0).await?.map(|(_, r)| r))
    }
}

/// A registered organisation's name and role, through the request's loader.
pub(super) async fn org(ctx: &Context<'_>, id: &str) -> Answer<Option<(String, &'static str)>> {
    loader(ctx).load_one(OrgKey(id.to_string())).await
}

/// A place: a business location or read point (SGLN URN).
pub struct Location(pub String);

#[Object]
impl Location {
    /// The place as events name it (SGLN URN).
    pub(super) async fn id(&self) -> &str {
        &self.0
    }
    /// The registered organisation at this GLN, when there is one.
    pub(super) async fn organization(&self, ctx: &Context<'_>) -> Answer<Option<Organization>> {
        Ok(org(ctx, &self.0)
            .await?
            .map(|_| Organization(self.0.clone())))
    }
    /// Events that happened here, oldest first (partners: those they may see).
    #[graphql(complexity = "first.unwrap_or(20) as usize * child_complexity")]
    pub(super) async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Answer<Page<Event>> {
        let who = caller(ctx);
        let events: Vec<Event> = with_graph(ctx, |g| {
            g.events_at(&self.0)
                .into_iter()
                .filter(|e| who.sees_event(g, e))
                .map(Event)
                .collect()
        });
        page(ctx, events, first, after)
    }
}
