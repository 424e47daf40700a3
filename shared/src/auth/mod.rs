//! Identity: roles, password hashing. (Tokens and RBAC build on these.)

pub mod client;
pub mod password;
pub mod permissions;
pub mod principal;
pub mod roles;
pub mod sessions;
pub mod tokens;

pub use permissions::Permission;
pub use roles::Role;
