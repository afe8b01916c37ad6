//! Warden decision engine (in progress).
