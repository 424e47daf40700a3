//! The five staff roles, ordered by power.

crate::types::named_enum! {
    pub enum Role {
        // Declaration order is the order of power (derived Ord relies on it).
        ReadOnly,
        Support,
        Billing,
        Admin,
        SuperAdmin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Named;

    #[test]
    fn round_trips_and_is_case_exact() {
        for &role in Role::all() {
            assert_eq!(Role::from_name(role.as_str()).unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("admin".parse::<Role>().is_err());
        assert!("Admin".parse::<Role>().is_err());
        assert_eq!(
            Role::from_name("Admin").unwrap_err(),
            "must be one of READ_ONLY, SUPPORT, BILLING, ADMIN, SUPER_ADMIN"
        );
        assert_eq!(Role::from_name("BILLING"), Ok(Role::Billing));
    }

    #[test]
    fn ordered_by_power() {
        assert!(Role::SuperAdmin > Role::Admin);
        assert!(Role::Admin > Role::Billing);
        assert!(Role::Billing > Role::Support);
        assert!(Role::Support > Role::ReadOnly);
    }
}
