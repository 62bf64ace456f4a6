//! Ethernet / IPv4 / UDP wire formats.
