//! relay (being built)
