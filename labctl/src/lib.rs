//! labctl (being built)
