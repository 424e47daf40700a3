//! The auth function's endpoints: sign in, refresh, sign out, who am I.

pub mod api;
