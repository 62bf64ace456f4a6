//! Multicast load generator and sink (being built).
pub mod summary;
