//! Every agent-side bound and duration, each with the reason for its value.
//! Bounds that are part of the wire contract with the hub stay in
//! [`nextdeploy_shared::limits`].
