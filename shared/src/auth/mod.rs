//! Identity: roles, password hashing. (Tokens and RBAC build on these.)

pub mod password;
pub mod roles;

pub use roles::Role;
