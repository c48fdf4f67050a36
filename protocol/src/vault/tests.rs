//! Unit tests of the vault (spec/vault.md).
