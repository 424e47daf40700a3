//! The five staff roles, ordered by power.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    // Declaration order is the order of power (derived Ord relies on it).
    ReadOnly,
    Support,
    Billing,
    Admin,
    SuperAdmin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::ReadOnly, Role::Support, Role::Billing, Role::Admin, Role::SuperAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "READ_ONLY",
            Role::Support => "SUPPORT",
            Role::Billing => "BILLING",
            Role::Admin => "ADMIN",
            Role::SuperAdmin => "SUPER_ADMIN",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    /// Exact, upper-case names only: roles are stored and sent in this case.
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| "must be one of SUPER_ADMIN, ADMIN, BILLING, SUPPORT, READ_ONLY".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_case_exact() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("admin".parse::<Role>().is_err());
        assert!("Admin".parse::<Role>().is_err());
    }

    #[test]
    fn ordered_by_power() {
        assert!(Role::SuperAdmin > Role::Admin);
        assert!(Role::Admin > Role::Billing);
        assert!(Role::Billing > Role::Support);
        assert!(Role::Support > Role::ReadOnly);
    }
}
