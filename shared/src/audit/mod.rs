//! The audit log as staff read it.

pub mod api;
