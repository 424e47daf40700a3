//! The one permission table. Every route declares one of these; nothing
//! else in the code decides who may do what.

use super::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// No authentication (health, public catalogue, login, webhooks).
    Public,
    /// Any signed-in user (me, logout).
    Authenticated,
    /// Read catalogue, orders, customers, subscriptions, jobs, mail accounts.
    ReadData,
    WriteCatalog,
    SuspendSubscription,
    TerminateSubscription,
    RetryJob,
    ReadServers,
    WriteServers,
    ManageUsers,
    ReadAudit,
    ManageMail,
    /// Reset a site's SFTP password, add its keys.
    ManageSiteLogins,
    /// Issue a site's certificate again.
    ManageCertificates,
    ManageTenants,
}

impl Permission {
    /// Whether `role` holds this permission (`Public` needs no role at all).
    pub fn allows(self, role: Role) -> bool {
        use Permission::*;
        use Role::*;
        match self {
            Public | Authenticated | ReadData => true,
            WriteCatalog => matches!(role, Billing | Admin | SuperAdmin),
            SuspendSubscription => matches!(role, Support | Billing | Admin | SuperAdmin),
            TerminateSubscription => matches!(role, Admin | SuperAdmin),
            RetryJob | ManageSiteLogins | ManageCertificates => matches!(role, Support | Admin | SuperAdmin),
            ReadServers => matches!(role, Support | Admin | SuperAdmin),
            WriteServers | ManageUsers | ReadAudit | ManageMail => {
                matches!(role, Admin | SuperAdmin)
            }
            ManageTenants => matches!(role, SuperAdmin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Named;

    /// The contract's table, transcribed row by row
    /// (READ_ONLY, SUPPORT, BILLING, ADMIN, SUPER_ADMIN).
    #[test]
    fn matches_the_contract() {
        let table: [(Permission, [bool; 5]); 12] = [
            (Permission::ReadData, [true, true, true, true, true]),
            (Permission::WriteCatalog, [false, false, true, true, true]),
            (Permission::SuspendSubscription, [false, true, true, true, true]),
            (Permission::TerminateSubscription, [false, false, false, true, true]),
            (Permission::RetryJob, [false, true, false, true, true]),
            (Permission::ManageSiteLogins, [false, true, false, true, true]),
            (Permission::ManageCertificates, [false, true, false, true, true]),
            (Permission::ReadServers, [false, true, false, true, true]),
            (Permission::WriteServers, [false, false, false, true, true]),
            (Permission::ManageUsers, [false, false, false, true, true]),
            (Permission::ReadAudit, [false, false, false, true, true]),
            (Permission::ManageTenants, [false, false, false, false, true]),
        ];
        for (permission, expected) in table {
            for (role, allowed) in Role::all().iter().copied().zip(expected) {
                assert_eq!(permission.allows(role), allowed, "{permission:?} for {role}");
            }
        }
    }
}
