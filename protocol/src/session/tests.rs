//! Unit tests of the session envelope (spec/session.md).
