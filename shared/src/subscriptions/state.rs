//! The subscription state machine: one transition function, so no handler
//! or job decides on its own which status follows which.

use crate::error::AppError;
use crate::types::Named;

crate::types::named_enum! {
    pub enum SubscriptionStatus {
        Pending,
        Active,
        ProvisioningFailed,
        Suspended,
        Terminated,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// Every provisioning job succeeded.
    Activate,
    /// A provisioning job is dead.
    ProvisioningFailed,
    /// An admin retried a dead provisioning job.
    RetryProvisioning,
    Suspend,
    Unsuspend,
    Terminate,
}

impl SubscriptionStatus {
    /// The status after `event`, or an error naming both when not allowed.
    pub fn transition(self, event: SubscriptionEvent) -> Result<SubscriptionStatus, InvalidTransition> {
        use SubscriptionEvent as E;
        use SubscriptionStatus as S;
        match (self, event) {
            (S::Pending, E::Activate) => Ok(S::Active),
            (S::Pending, E::ProvisioningFailed) => Ok(S::ProvisioningFailed),
            (S::ProvisioningFailed, E::RetryProvisioning) => Ok(S::Pending),
            (S::Active, E::Suspend) => Ok(S::Suspended),
            (S::Suspended, E::Unsuspend) => Ok(S::Active),
            (S::Active | S::Suspended | S::ProvisioningFailed, E::Terminate) => Ok(S::Terminated),
            (from, event) => Err(InvalidTransition { from, event }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event:?} a subscription that is {from}")]
pub struct InvalidTransition {
    pub from: SubscriptionStatus,
    pub event: SubscriptionEvent,
}

impl SubscriptionEvent {
    /// The statuses this event is allowed from, and where it leads.
    pub fn allowed(self) -> Vec<(SubscriptionStatus, SubscriptionStatus)> {
        SubscriptionStatus::all()
            .iter()
            .copied()
            .filter_map(|from| from.transition(self).ok().map(|to| (from, to)))
            .collect()
    }
}

impl From<InvalidTransition> for AppError {
    /// Names the current state and the states the action needs and leads to.
    fn from(e: InvalidTransition) -> AppError {
        let allowed = e.event.allowed();
        let from: Vec<&str> = allowed.iter().map(|(from, _)| from.as_str()).collect();
        let to = allowed.first().map(|(_, to)| to.as_str()).unwrap_or("-");
        AppError::Conflict {
            field: Some("status".into()),
            detail: format!(
                "The subscription is {}; {:?} (to {to}) is only allowed from {}.",
                e.from,
                e.event,
                from.join(" or ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubscriptionEvent as E;
    use SubscriptionStatus as S;

    #[test]
    fn allowed_transitions() {
        assert_eq!(S::Pending.transition(E::Activate), Ok(S::Active));
        assert_eq!(S::Pending.transition(E::ProvisioningFailed), Ok(S::ProvisioningFailed));
        assert_eq!(S::ProvisioningFailed.transition(E::RetryProvisioning), Ok(S::Pending));
        assert_eq!(S::Active.transition(E::Suspend), Ok(S::Suspended));
        assert_eq!(S::Suspended.transition(E::Unsuspend), Ok(S::Active));
        for from in [S::Active, S::Suspended, S::ProvisioningFailed] {
            assert_eq!(from.transition(E::Terminate), Ok(S::Terminated));
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let allowed = [
            (S::Pending, E::Activate),
            (S::Pending, E::ProvisioningFailed),
            (S::ProvisioningFailed, E::RetryProvisioning),
            (S::Active, E::Suspend),
            (S::Suspended, E::Unsuspend),
            (S::Active, E::Terminate),
            (S::Suspended, E::Terminate),
            (S::ProvisioningFailed, E::Terminate),
        ];
        let events = [E::Activate, E::ProvisioningFailed, E::RetryProvisioning, E::Suspend, E::Unsuspend, E::Terminate];
        for &from in S::all() {
            for event in events {
                if !allowed.contains(&(from, event)) {
                    assert!(from.transition(event).is_err(), "{from} + {event:?}");
                }
            }
        }
        let err = AppError::from(S::Terminated.transition(E::Suspend).unwrap_err());
        assert_eq!(err.status(), axum::http::StatusCode::CONFLICT);
        let detail = err.to_problem().detail;
        assert!(detail.contains("TERMINATED") && detail.contains("SUSPENDED") && detail.contains("ACTIVE"), "{detail}");
    }
}
